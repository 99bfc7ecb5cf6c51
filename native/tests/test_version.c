/* The loaded library's version (edgeser_version_number, edgeser_version) equals the header's
 * macros, and the string and number are both built from EDGESER_VERSION_MAJOR/MINOR/PATCH. */
#include <stdio.h>
#include <string.h>

#include "edgeser/frontend.h"
#include "check.h"

int main(void)
{
    char expected[32];
    const char *runtime = edgeser_version();

    /* The macros agree with each other. */
    CHECK_STATUS(EDGESER_VERSION_NUMBER, EDGESER_VERSION_MAJOR * 10000 +
                                             EDGESER_VERSION_MINOR * 100 + EDGESER_VERSION_PATCH);
    snprintf(expected, sizeof expected, "%d.%d.%d", EDGESER_VERSION_MAJOR, EDGESER_VERSION_MINOR,
             EDGESER_VERSION_PATCH);
    CHECK(strcmp(EDGESER_VERSION_STRING, expected) == 0);

    /* The library agrees with the header. */
    CHECK_STATUS(edgeser_version_number(), EDGESER_VERSION_NUMBER);
    CHECK_STATUS(edgeser_version_number() / 10000u, EDGESER_VERSION_MAJOR);
    CHECK_STATUS((edgeser_version_number() / 100u) % 100u, EDGESER_VERSION_MINOR);
    CHECK_STATUS(edgeser_version_number() % 100u, EDGESER_VERSION_PATCH);
    CHECK(runtime != NULL);
    if (runtime != NULL) {
        CHECK(strcmp(runtime, EDGESER_VERSION_STRING) == 0);
        CHECK(strcmp(runtime, expected) == 0);
    }
    /* The static string is the same object every call. */
    CHECK(edgeser_version() == runtime);
    return check_report("test_version");
}
