// zlib's inflate, crc32 and adler32 (Debian: zlib1g-dev puts zlib.h on the default include path).
#include <zlib.h>
