/* PCM sample conversion and channel mixdown for the edgeser native frontend. */
#include <string.h>

#include "edgeser/frontend.h"

EDGESER_API size_t edgeser_pcm_bytes_per_sample(edgeser_pcm_format format)
{
    switch (format) {
    case EDGESER_PCM_U8:
        return 1u;
    case EDGESER_PCM_S16:
        return 2u;
    case EDGESER_PCM_S24:
        return 3u;
    case EDGESER_PCM_S32:
        return 4u;
    case EDGESER_PCM_F32:
        return 4u;
    case EDGESER_PCM_F64:
        return 8u;
    }
    return 0u;
}

/* *product = a * b, or 0 when that would overflow size_t. */
static int mul_size(size_t a, size_t b, size_t *product)
{
    if (a != 0u && b > SIZE_MAX / a) {
        return 0;
    }
    *product = a * b;
    return 1;
}

/* Integers are assembled byte by byte (little-endian), so neither host byte order nor the
 * alignment of `in` matters. Every integer decoded here fits a float mantissa except S32,
 * which is scaled in double and rounded once. */

static void decode_u8(const unsigned char *in, size_t count, float *out)
{
    size_t i;
    for (i = 0; i < count; ++i) {
        out[i] = ((float)in[i] - 128.0f) / 128.0f;
    }
}

static void decode_s16(const unsigned char *in, size_t count, float *out)
{
    size_t i;
    for (i = 0; i < count; ++i) {
        const unsigned char *b = in + 2u * i;
        uint32_t u = (uint32_t)b[0] | ((uint32_t)b[1] << 8);
        int32_t v = (int32_t)u - ((u & 0x8000u) ? (int32_t)0x10000 : 0);
        out[i] = (float)v / 32768.0f;
    }
}

static void decode_s24(const unsigned char *in, size_t count, float *out)
{
    size_t i;
    for (i = 0; i < count; ++i) {
        const unsigned char *b = in + 3u * i;
        uint32_t u = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16);
        int32_t v = (int32_t)u - ((u & 0x800000u) ? (int32_t)0x1000000 : 0);
        out[i] = (float)v / 8388608.0f;
    }
}

static void decode_s32(const unsigned char *in, size_t count, float *out)
{
    size_t i;
    for (i = 0; i < count; ++i) {
        const unsigned char *b = in + 4u * i;
        uint32_t u = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
                     ((uint32_t)b[3] << 24);
        int64_t v = (int64_t)u - ((u & 0x80000000u) ? (int64_t)0x100000000 : 0);
        out[i] = (float)((double)v / 2147483648.0);
    }
}

static void decode_f32(const unsigned char *in, size_t count, float *out)
{
    size_t i;
    for (i = 0; i < count; ++i) {
        float f;
        memcpy(&f, in + sizeof(float) * i, sizeof(float));
        out[i] = f;
    }
}

static void decode_f64(const unsigned char *in, size_t count, float *out)
{
    size_t i;
    for (i = 0; i < count; ++i) {
        double d;
        memcpy(&d, in + sizeof(double) * i, sizeof(double));
        out[i] = (float)d;
    }
}

EDGESER_API edgeser_status edgeser_pcm_to_float(const void *in, size_t n_frames, uint32_t channels,
                                                edgeser_pcm_format format, float *out)
{
    size_t bytes_per_sample;
    size_t count;
    size_t in_bytes;
    size_t out_bytes;

    if (channels == 0u) {
        return EDGESER_ERR_CHANNELS;
    }
    bytes_per_sample = edgeser_pcm_bytes_per_sample(format);
    if (bytes_per_sample == 0u) {
        return EDGESER_ERR_FORMAT;
    }
    if (!mul_size(n_frames, (size_t)channels, &count) ||
        !mul_size(count, bytes_per_sample, &in_bytes) ||
        !mul_size(count, sizeof(float), &out_bytes)) {
        return EDGESER_ERR_OVERFLOW;
    }
    (void)in_bytes;
    (void)out_bytes;
    if (count == 0u) {
        return EDGESER_OK;
    }
    if (in == NULL || out == NULL) {
        return EDGESER_ERR_NULL;
    }

    switch (format) {
    case EDGESER_PCM_U8:
        decode_u8((const unsigned char *)in, count, out);
        break;
    case EDGESER_PCM_S16:
        decode_s16((const unsigned char *)in, count, out);
        break;
    case EDGESER_PCM_S24:
        decode_s24((const unsigned char *)in, count, out);
        break;
    case EDGESER_PCM_S32:
        decode_s32((const unsigned char *)in, count, out);
        break;
    case EDGESER_PCM_F32:
        decode_f32((const unsigned char *)in, count, out);
        break;
    case EDGESER_PCM_F64:
        decode_f64((const unsigned char *)in, count, out);
        break;
    default:
        return EDGESER_ERR_FORMAT; /* unreachable: rejected above */
    }
    return EDGESER_OK;
}

EDGESER_API edgeser_status edgeser_mixdown(const float *in, size_t n_frames, uint32_t channels,
                                           float *out)
{
    size_t count;
    size_t bytes;
    size_t i;

    if (channels == 0u) {
        return EDGESER_ERR_CHANNELS;
    }
    if (!mul_size(n_frames, (size_t)channels, &count) ||
        !mul_size(count, sizeof(float), &bytes)) {
        return EDGESER_ERR_OVERFLOW;
    }
    (void)bytes;
    if (n_frames == 0u) {
        return EDGESER_OK;
    }
    if (in == NULL || out == NULL) {
        return EDGESER_ERR_NULL;
    }

    /* Frame i reads in[i*channels .. i*channels+channels-1] before writing out[i]. Since
     * i <= i*channels, a write never lands on a sample a later frame still has to read, so
     * `out` may alias `in`. */
    if (channels == 1u) {
        if (out != in) {
            memmove(out, in, n_frames * sizeof(float));
        }
        return EDGESER_OK;
    }
    for (i = 0; i < n_frames; ++i) {
        const float *frame = in + i * (size_t)channels;
        double acc = 0.0;
        uint32_t c;
        for (c = 0; c < channels; ++c) {
            acc += (double)frame[c];
        }
        out[i] = (float)(acc / (double)channels);
    }
    return EDGESER_OK;
}
