vcl 4.1;
# Varnish beside Outpost: the built-in VCL (caches by Cache-Control,
# coalesces misses on its waiting list) with the origin as backend.
backend origin {
    .host = "127.0.0.1";
    .port = "@PORT_ORIGIN@";
}
