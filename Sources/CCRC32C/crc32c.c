// CRC-32C (Castagnoli polynomial 0x1EDC6F41, reflected 0x82F63B78), as used by iSCSI and
// ext4: a hardware path (the CRC32 instruction on three interleaved streams) and a
// slicing-by-8 table path.
#include "crc32c.h"

#include <string.h>

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static int table_ready;

static void build_table(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table[0][n];
        for (int s = 1; s < 8; s++) {
            c = table[0][c & 0xFF] ^ (c >> 8);
            table[s][n] = c;
        }
    }
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

uint32_t fedkit_crc32c_portable(uint32_t crc, const void *data, size_t length) {
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) build_table();  // idempotent if raced
    const uint8_t *p = data;
    uint32_t c = ~crc;
    while (length && ((uintptr_t)p & 7)) { c = table[0][(c ^ *p++) & 0xFF] ^ (c >> 8); length--; }
    while (length >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        lo = __builtin_bswap32(lo);
        hi = __builtin_bswap32(hi);
#endif
        lo ^= c;
        c = table[7][lo & 0xFF] ^ table[6][(lo >> 8) & 0xFF] ^ table[5][(lo >> 16) & 0xFF] ^ table[4][lo >> 24] ^
            table[3][hi & 0xFF] ^ table[2][(hi >> 8) & 0xFF] ^ table[1][(hi >> 16) & 0xFF] ^ table[0][hi >> 24];
        p += 8;
        length -= 8;
    }
    while (length--) c = table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return ~c;
}

// The CPU's CRC32 instruction, one byte or eight at a time, where there is one.
#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#define HARDWARE 1
#define HARDWARE_TARGET __attribute__((target("sse4.2")))
#define STEP8(c, byte) _mm_crc32_u8((uint32_t)(c), (byte))
#define STEP64(c, word) _mm_crc32_u64((c), (word))

static int has_hardware(void) {
    static int cached = -1;
    int known = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (known < 0) {
        unsigned a, b, c, d;
        known = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2) ? 1 : 0;
        __atomic_store_n(&cached, known, __ATOMIC_RELAXED);
    }
    return known;
}
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
#define HARDWARE 1
#define HARDWARE_TARGET
#define STEP8(c, byte) __crc32cb((uint32_t)(c), (byte))
#define STEP64(c, word) __crc32cd((uint32_t)(c), (word))

static int has_hardware(void) { return 1; }
#endif

#ifdef HARDWARE
// Combining streams. The CRC register (before the final inversion) is linear: running
// bytes B from state s gives shift(s, |B|) ^ run(B from 0), where shift(s, n) multiplies s
// by x^(8n) modulo the polynomial. The hardware path runs three streams of `STREAM` bytes at
// once (the CRC32 instruction's latency is three times its throughput) and joins them with
// shift tables for STREAM bytes, built once.
#define STREAM 4096

/// a * b modulo the polynomial, bit-reflected (bit 31 is x^0).
static uint32_t multiply(uint32_t a, uint32_t b) {
    uint32_t product = 0;
    for (uint32_t m = 1u << 31; m; m >>= 1) {
        if (a & m) product ^= b;
        b = b & 1 ? (b >> 1) ^ POLY : b >> 1;  // b * x
    }
    return product;
}

static uint32_t shift_table[4][256];
static int shift_ready;

static void build_shift_table(void) {
    uint32_t x8n = 1u << 31;  // x^0
    uint32_t x8 = 1u << 23;   // x^8
    for (int i = 0; i < STREAM; i++) x8n = multiply(x8n, x8);
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++) shift_table[k][b] = multiply(x8n, b << (8 * k));
    __atomic_store_n(&shift_ready, 1, __ATOMIC_RELEASE);
}

/// The register `c` moved past STREAM zero bytes.
static inline uint32_t shift_stream(uint32_t c) {
    return shift_table[0][c & 0xFF] ^ shift_table[1][(c >> 8) & 0xFF] ^ shift_table[2][(c >> 16) & 0xFF] ^
           shift_table[3][c >> 24];
}

HARDWARE_TARGET
static uint32_t crc32c_hardware(uint32_t crc, const uint8_t *p, size_t length) {
    uint64_t c = ~crc;
    while (length && ((uintptr_t)p & 7)) { c = STEP8(c, *p++); length--; }
    if (length >= 3 * STREAM && !__atomic_load_n(&shift_ready, __ATOMIC_ACQUIRE)) build_shift_table();  // idempotent if raced
    while (length >= 3 * STREAM) {
        uint64_t c1 = 0, c2 = 0, v0, v1, v2;
        for (const uint8_t *end = p + STREAM; p < end; p += 8) {
            memcpy(&v0, p, 8);
            memcpy(&v1, p + STREAM, 8);
            memcpy(&v2, p + 2 * STREAM, 8);
            c = STEP64(c, v0);
            c1 = STEP64(c1, v1);
            c2 = STEP64(c2, v2);
        }
        c = shift_stream((uint32_t)c) ^ (uint32_t)c1;
        c = shift_stream((uint32_t)c) ^ (uint32_t)c2;
        p += 2 * STREAM;
        length -= 3 * STREAM;
    }
    while (length >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = STEP64(c, v);
        p += 8;
        length -= 8;
    }
    while (length--) c = STEP8(c, *p++);
    return ~(uint32_t)c;
}
#else
static uint32_t crc32c_hardware(uint32_t crc, const uint8_t *p, size_t length) {
    return fedkit_crc32c_portable(crc, p, length);
}

static int has_hardware(void) { return 0; }
#endif

uint32_t fedkit_crc32c(uint32_t crc, const void *data, size_t length) {
    if (has_hardware()) return crc32c_hardware(crc, data, length);
    return fedkit_crc32c_portable(crc, data, length);
}
