/* Status strings and version for the edgeser native frontend. */
#include "edgeser/frontend.h"

EDGESER_API const char *edgeser_strerror(edgeser_status status)
{
    switch (status) {
    case EDGESER_OK:
        return "The operation succeeded.";
    case EDGESER_ERR_NULL:
        return "A required pointer argument was NULL.";
    case EDGESER_ERR_RATE:
        return "The sample rate is outside the supported range of 1000 to 384000 Hz.";
    case EDGESER_ERR_CHANNELS:
        return "The channel count must be at least 1.";
    case EDGESER_ERR_FORMAT:
        return "The PCM sample format is unknown.";
    case EDGESER_ERR_BUFFER_TOO_SMALL:
        return "The output buffer is smaller than the required maximum output size.";
    case EDGESER_ERR_OVERFLOW:
        return "A length computation would overflow.";
    case EDGESER_ERR_STATE:
        return "The object is uninitialised or was already flushed; reset it first.";
    case EDGESER_ERR_ARGUMENT:
        return "A size, window or hop argument is out of range.";
    case EDGESER_ERR_NOMEM:
        return "Memory for the resampler could not be allocated.";
    }
    return "Unknown edgeser status code.";
}

EDGESER_API const char *edgeser_version(void)
{
    return EDGESER_VERSION_STRING;
}

EDGESER_API unsigned edgeser_version_number(void)
{
    return (unsigned)EDGESER_VERSION_NUMBER;
}
