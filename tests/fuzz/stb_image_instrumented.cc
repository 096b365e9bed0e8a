// stb_image compiled into the image decoder's fuzz target from the header Debian's libstb is
// built from (libstb-dev ships both), so that ASan and the fuzzer's coverage see inside the
// decoder the server runs. This executable's definitions take the place of libstb.so's.
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
