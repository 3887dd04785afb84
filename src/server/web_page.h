// The web page served at "/": src/server/web/index.html, compiled in by CMake (configure_file
// of web_page.cpp.in) so the binary needs no files beside it.
#pragma once

namespace lumen::server {
extern const char* const kWebIndexHtml;
}
