// libjpeg-turbo's TurboJPEG interface (Debian: libturbojpeg0-dev puts turbojpeg.h on the default include path).
#include <turbojpeg.h>
