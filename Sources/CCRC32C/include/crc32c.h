// CRC-32C (Castagnoli), the checksum FedKit may use instead of SHA-256 for chunked payloads.
#ifndef FEDKIT_CRC32C_H
#define FEDKIT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// Continues a CRC-32C: pass 0 to start, the previous result to continue.
/// Uses the CPU's CRC32 instruction when it has one (x86-64 SSE4.2, ARMv8 CRC).
uint32_t fedkit_crc32c(uint32_t crc, const void *data, size_t length);

/// The same CRC computed with tables only, for tests.
uint32_t fedkit_crc32c_portable(uint32_t crc, const void *data, size_t length);

#endif
