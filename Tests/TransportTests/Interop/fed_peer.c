/*
 * fed_peer: an independent implementation of FedKit's framing in C, built at test time
 * against protobuf-c (code generated from proto/fed.proto into a temporary folder) and
 * OpenSSL's libcrypto (SHA-256).
 *
 *   fed_peer decode FILE   reads frames, prints one summary line per envelope; chunked
 *                          payloads are reassembled and their SHA-256 checked
 *   fed_peer encode FILE   writes a fixed conversation of frames, including a chunked payload
 *
 * A frame is a 4-byte big-endian length followed by one serialized fedkit.v1.Envelope.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "fed.pb-c.h"

static uint64_t fnv1a64(const uint8_t *data, size_t len) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) { h ^= data[i]; h *= 0x100000001b3ULL; }
    return h;
}

static void sha256(const uint8_t *data, size_t len, uint8_t out[32]) {
    unsigned int n = 32;
    if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL)) { fprintf(stderr, "sha256 failed\n"); exit(1); }
}

/* CRC-32C (Castagnoli), bit by bit: slow and obviously right. */
static uint32_t crc32c(const uint8_t *data, size_t len) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        c ^= data[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static uint32_t bits_f(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static uint64_t bits_d(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }

static void print_u64s(const char *label, size_t n, const uint64_t *v) {
    printf(" %s=", label);
    for (size_t i = 0; i < n; i++) printf(i ? ",%" PRIu64 : "%" PRIu64, v[i]);
}

static void print_tensors(size_t n, Fedkit__V1__Tensor **t) {
    printf(" tensors=%zu", n);
    for (size_t i = 0; i < n; i++) {
        printf(" %s:", t[i]->name);
        if (t[i]->n_shape == 0) printf("scalar");
        for (size_t d = 0; d < t[i]->n_shape; d++) printf(d ? "x%" PRId64 : "%" PRId64, t[i]->shape[d]);
        printf(":%d:%zu:%016" PRIx64, (int)t[i]->dtype, t[i]->data.len, fnv1a64(t[i]->data.data, t[i]->data.len));
    }
}

/* The open chunked transfer. */
static uint64_t open_id;
static uint32_t open_next;
static uint8_t *open_bytes;
static size_t open_len;

static void print_payload(const Fedkit__V1__Payload *p) {
    if (!p) { printf(" payload=none"); return; }
    if (p->content_case == FEDKIT__V1__PAYLOAD__CONTENT_INLINE) {
        printf(" inline");
        print_tensors(p->inline_->n_tensors, p->inline_->tensors);
    } else if (p->content_case == FEDKIT__V1__PAYLOAD__CONTENT_CHUNKED) {
        const Fedkit__V1__ChunkedPayload *c = p->chunked;
        int ok = c->transfer_id == open_id && c->chunk_count == open_next && c->total_bytes == open_len
                 && (c->sha256.len > 0 || c->crc32c.len > 0);
        if (c->sha256.len > 0) {  /* SHA-256 */
            uint8_t digest[32];
            sha256(open_bytes, open_len, digest);
            ok = ok && c->sha256.len == 32 && memcmp(digest, c->sha256.data, 32) == 0;
        }
        if (c->crc32c.len > 0) {  /* CRC-32C, 4 bytes big-endian */
            uint32_t crc = crc32c(open_bytes, open_len);
            uint8_t be[4] = {crc >> 24, crc >> 16, crc >> 8, crc};
            ok = ok && c->crc32c.len == 4 && memcmp(be, c->crc32c.data, 4) == 0;
        }
        printf(" reassembled=%" PRIu64 " %s=%s", c->transfer_id, c->sha256.len > 0 ? "sha256" : "crc32c", ok ? "ok" : "MISMATCH");
        if (ok) {
            Fedkit__V1__TensorSet *set = fedkit__v1__tensor_set__unpack(NULL, open_len, open_bytes);
            if (!set) { printf(" tensorset=INVALID"); return; }
            print_tensors(set->n_tensors, set->tensors);
            fedkit__v1__tensor_set__free_unpacked(set, NULL);
        }
        free(open_bytes); open_bytes = NULL; open_len = 0; open_next = 0;
    } else {
        printf(" payload=empty");
    }
}

static void print_envelope(const Fedkit__V1__Envelope *e) {
    printf("seq=%" PRIu64, e->sequence);
    switch (e->body_case) {
    case FEDKIT__V1__ENVELOPE__BODY_HELLO: {
        const Fedkit__V1__Hello *h = e->hello;
        printf(" hello name=%s version=%u caps=", h->client_name, h->protocol_version);
        for (size_t i = 0; i < h->n_capabilities; i++) printf(i ? ",%s" : "%s", h->capabilities[i]);
        printf(" software=%s", h->software_version);
        if (h->dataset) {
            printf(" domain=%s train=%" PRIu64 " test=%" PRIu64, h->dataset->domain, h->dataset->train_examples, h->dataset->test_examples);
            print_u64s("histogram", h->dataset->n_label_histogram, h->dataset->label_histogram);
        }
        break;
    }
    case FEDKIT__V1__ENVELOPE__BODY_WELCOME:
        printf(" welcome version=%u heartbeat=%u software=%s caps=", e->welcome->protocol_version,
               e->welcome->heartbeat_interval_seconds, e->welcome->software_version);
        for (size_t i = 0; i < e->welcome->n_capabilities; i++) printf(i ? ",%s" : "%s", e->welcome->capabilities[i]);
        break;
    case FEDKIT__V1__ENVELOPE__BODY_REJECT:
        printf(" reject reason=%s versions=", e->reject->reason);
        for (size_t i = 0; i < e->reject->n_supported_versions; i++) printf(i ? ",%u" : "%u", e->reject->supported_versions[i]);
        break;
    case FEDKIT__V1__ENVELOPE__BODY_FIT_REQUEST: {
        const Fedkit__V1__FitRequest *r = e->fit_request;
        printf(" fit_request round=%" PRIu64, r->round);
        if (r->config) {
            const Fedkit__V1__TrainingConfig *c = r->config;
            printf(" epochs=%u batch=%u lr=%08x momentum=%08x wd=%08x agc=%08x mu=%08x seed=%" PRIu64, c->epochs, c->batch_size,
                   bits_f(c->learning_rate), bits_f(c->momentum), bits_f(c->weight_decay), bits_f(c->agc_lambda),
                   bits_f(c->fedprox_mu), c->seed);
        }
        print_payload(r->parameters);
        break;
    }
    case FEDKIT__V1__ENVELOPE__BODY_FIT_RESULT: {
        const Fedkit__V1__FitResult *r = e->fit_result;
        printf(" fit_result round=%" PRIu64 " examples=%" PRIu64 " loss=%08x accuracy=%08x wall=%016" PRIx64, r->round,
               r->num_examples, bits_f(r->train_loss), bits_f(r->train_accuracy), bits_d(r->wall_time_seconds));
        print_payload(r->parameters);
        break;
    }
    case FEDKIT__V1__ENVELOPE__BODY_EVALUATE_REQUEST:
        printf(" evaluate_request round=%" PRIu64, e->evaluate_request->round);
        print_payload(e->evaluate_request->parameters);
        break;
    case FEDKIT__V1__ENVELOPE__BODY_EVALUATE_RESULT: {
        const Fedkit__V1__EvaluateResult *r = e->evaluate_result;
        printf(" evaluate_result round=%" PRIu64 " loss=%08x accuracy=%08x examples=%" PRIu64, r->round, bits_f(r->loss),
               bits_f(r->accuracy), r->num_examples);
        print_u64s("correct", r->n_correct_per_class, r->correct_per_class);
        print_u64s("total", r->n_total_per_class, r->total_per_class);
        break;
    }
    case FEDKIT__V1__ENVELOPE__BODY_HEARTBEAT:
        printf(" heartbeat millis=%" PRIu64, e->heartbeat->unix_millis);
        break;
    case FEDKIT__V1__ENVELOPE__BODY_GOODBYE:
        printf(" goodbye reason=%s", e->goodbye->reason);
        break;
    case FEDKIT__V1__ENVELOPE__BODY_ERROR:
        printf(" error code=%d message=%s", (int)e->error->code, e->error->message);
        break;
    case FEDKIT__V1__ENVELOPE__BODY_CHUNK: {
        const Fedkit__V1__PayloadChunk *c = e->chunk;
        printf(" chunk id=%" PRIu64 " index=%u bytes=%zu", c->transfer_id, c->index, c->data.len);
        if (c->index == 0) { free(open_bytes); open_bytes = NULL; open_len = 0; open_next = 0; open_id = c->transfer_id; }
        if (c->transfer_id == open_id && c->index == open_next) {
            open_bytes = realloc(open_bytes, open_len + c->data.len + 1);
            memcpy(open_bytes + open_len, c->data.data, c->data.len);
            open_len += c->data.len;
            open_next++;
        }
        break;
    }
    default:
        printf(" empty");
    }
    printf("\n");
}

static int decode(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return 1; }
    uint8_t header[4];
    while (fread(header, 1, 4, f) == 4) {
        size_t len = (size_t)header[0] << 24 | (size_t)header[1] << 16 | (size_t)header[2] << 8 | header[3];
        uint8_t *body = malloc(len + 1);
        if (fread(body, 1, len, f) != len) { fprintf(stderr, "truncated frame\n"); return 1; }
        Fedkit__V1__Envelope *e = fedkit__v1__envelope__unpack(NULL, len, body);
        if (!e) { fprintf(stderr, "invalid envelope of %zu bytes\n", len); return 1; }
        print_envelope(e);
        fedkit__v1__envelope__free_unpacked(e, NULL);
        free(body);
    }
    fclose(f);
    return 0;
}

static void write_frame(FILE *f, const Fedkit__V1__Envelope *e) {
    size_t len = fedkit__v1__envelope__get_packed_size(e);
    uint8_t *buf = malloc(len + 4);
    buf[0] = len >> 24; buf[1] = len >> 16; buf[2] = len >> 8; buf[3] = len;
    fedkit__v1__envelope__pack(e, buf + 4);
    fwrite(buf, 1, len + 4, f);
    free(buf);
}

static int encode(const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); return 1; }
    uint64_t seq = 0;

    /* Hello */
    Fedkit__V1__DatasetSummary ds = FEDKIT__V1__DATASET_SUMMARY__INIT;
    uint64_t hist[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    ds.domain = "usps"; ds.train_examples = 7291; ds.test_examples = 2007; ds.n_label_histogram = 10; ds.label_histogram = hist;
    Fedkit__V1__Hello hello = FEDKIT__V1__HELLO__INIT;
    char *caps[] = {"chunked-payload"};
    hello.client_name = "c-peer"; hello.protocol_version = 1; hello.n_capabilities = 1; hello.capabilities = caps;
    hello.dataset = &ds; hello.software_version = "fed_peer.c";
    Fedkit__V1__Envelope e = FEDKIT__V1__ENVELOPE__INIT;
    e.sequence = seq++; e.body_case = FEDKIT__V1__ENVELOPE__BODY_HELLO; e.hello = &hello;
    write_frame(f, &e);

    /* FitResult with an inline 2x3 float32 tensor: 0.5 * i, little-endian. */
    float small[6];
    for (int i = 0; i < 6; i++) small[i] = 0.5f * (float)i;
    int64_t small_shape[2] = {2, 3};
    Fedkit__V1__Tensor t = FEDKIT__V1__TENSOR__INIT;
    t.name = "fc.weight"; t.n_shape = 2; t.shape = small_shape; t.dtype = FEDKIT__V1__DTYPE__DTYPE_FLOAT32;
    t.data.data = (uint8_t *)small; t.data.len = sizeof small;
    Fedkit__V1__Tensor *tp[1] = {&t};
    Fedkit__V1__TensorSet set = FEDKIT__V1__TENSOR_SET__INIT;
    set.n_tensors = 1; set.tensors = tp;
    Fedkit__V1__Payload payload = FEDKIT__V1__PAYLOAD__INIT;
    payload.content_case = FEDKIT__V1__PAYLOAD__CONTENT_INLINE; payload.inline_ = &set;
    Fedkit__V1__FitResult fr = FEDKIT__V1__FIT_RESULT__INIT;
    fr.round = 3; fr.parameters = &payload; fr.num_examples = 7291; fr.train_loss = 0.25f; fr.train_accuracy = 0.75f; fr.wall_time_seconds = 1.5;
    e = (Fedkit__V1__Envelope)FEDKIT__V1__ENVELOPE__INIT;
    e.sequence = seq++; e.body_case = FEDKIT__V1__ENVELOPE__BODY_FIT_RESULT; e.fit_result = &fr;
    write_frame(f, &e);

    /* FitResult with a chunked payload: tensor "big" of 10000 floats 0.25 * i, in 3 chunks. */
    static float big[10000];
    for (int i = 0; i < 10000; i++) big[i] = 0.25f * (float)i;
    int64_t big_shape[1] = {10000};
    Fedkit__V1__Tensor bt = FEDKIT__V1__TENSOR__INIT;
    bt.name = "big"; bt.n_shape = 1; bt.shape = big_shape; bt.dtype = FEDKIT__V1__DTYPE__DTYPE_FLOAT32;
    bt.data.data = (uint8_t *)big; bt.data.len = sizeof big;
    Fedkit__V1__Tensor *btp[1] = {&bt};
    Fedkit__V1__TensorSet bset = FEDKIT__V1__TENSOR_SET__INIT;
    bset.n_tensors = 1; bset.tensors = btp;
    size_t total = fedkit__v1__tensor_set__get_packed_size(&bset);
    uint8_t *packed = malloc(total);
    fedkit__v1__tensor_set__pack(&bset, packed);
    size_t per = total / 3 + 1;
    uint32_t count = 0;
    for (size_t off = 0; off < total; off += per, count++) {
        Fedkit__V1__PayloadChunk c = FEDKIT__V1__PAYLOAD_CHUNK__INIT;
        c.transfer_id = 77; c.index = count;
        c.data.data = packed + off; c.data.len = off + per <= total ? per : total - off;
        e = (Fedkit__V1__Envelope)FEDKIT__V1__ENVELOPE__INIT;
        e.sequence = seq++; e.body_case = FEDKIT__V1__ENVELOPE__BODY_CHUNK; e.chunk = &c;
        write_frame(f, &e);
    }
    uint8_t digest[32];
    sha256(packed, total, digest);
    Fedkit__V1__ChunkedPayload ref = FEDKIT__V1__CHUNKED_PAYLOAD__INIT;
    ref.transfer_id = 77; ref.chunk_count = count; ref.total_bytes = total; ref.sha256.data = digest; ref.sha256.len = 32;
    Fedkit__V1__Payload cp = FEDKIT__V1__PAYLOAD__INIT;
    cp.content_case = FEDKIT__V1__PAYLOAD__CONTENT_CHUNKED; cp.chunked = &ref;
    Fedkit__V1__FitResult fr2 = FEDKIT__V1__FIT_RESULT__INIT;
    fr2.round = 4; fr2.parameters = &cp; fr2.num_examples = 7291;
    e = (Fedkit__V1__Envelope)FEDKIT__V1__ENVELOPE__INIT;
    e.sequence = seq++; e.body_case = FEDKIT__V1__ENVELOPE__BODY_FIT_RESULT; e.fit_result = &fr2;
    write_frame(f, &e);
    free(packed);

    /* EvaluateResult, Heartbeat, Goodbye */
    uint64_t correct[3] = {90, 80, 70}, totals[3] = {100, 100, 100};
    Fedkit__V1__EvaluateResult er = FEDKIT__V1__EVALUATE_RESULT__INIT;
    er.round = 4; er.loss = 0.5f; er.accuracy = 0.8f; er.num_examples = 300;
    er.n_correct_per_class = 3; er.correct_per_class = correct; er.n_total_per_class = 3; er.total_per_class = totals;
    e = (Fedkit__V1__Envelope)FEDKIT__V1__ENVELOPE__INIT;
    e.sequence = seq++; e.body_case = FEDKIT__V1__ENVELOPE__BODY_EVALUATE_RESULT; e.evaluate_result = &er;
    write_frame(f, &e);
    Fedkit__V1__Heartbeat hb = FEDKIT__V1__HEARTBEAT__INIT;
    hb.unix_millis = 1234567890123ULL;
    e = (Fedkit__V1__Envelope)FEDKIT__V1__ENVELOPE__INIT;
    e.sequence = seq++; e.body_case = FEDKIT__V1__ENVELOPE__BODY_HEARTBEAT; e.heartbeat = &hb;
    write_frame(f, &e);
    Fedkit__V1__Goodbye gb = FEDKIT__V1__GOODBYE__INIT;
    gb.reason = "done";
    e = (Fedkit__V1__Envelope)FEDKIT__V1__ENVELOPE__INIT;
    e.sequence = seq++; e.body_case = FEDKIT__V1__ENVELOPE__BODY_GOODBYE; e.goodbye = &gb;
    write_frame(f, &e);
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "decode") == 0) return decode(argv[2]);
    if (argc == 3 && strcmp(argv[1], "encode") == 0) return encode(argv[2]);
    fprintf(stderr, "usage: fed_peer decode|encode FILE\n");
    return 2;
}
