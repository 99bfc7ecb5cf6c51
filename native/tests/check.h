/* Minimal assertion helpers shared by the native test programs (C99, no dependencies).
 *
 *   CHECK(cond)                  cond must be true
 *   CHECK_STATUS(expr, expected) integer/enum expr must equal expected (each evaluated once)
 *   CHECK_NEAR(a, b, tol)        |a - b| <= tol in double (NaN fails)
 *   check_report("suite")        prints "suite: N passed, M failed", returns the exit code
 *
 * Failures print file:line and the expression to stderr and are counted; a failing check
 * does not stop the program. Include this header from exactly one file per test program.
 */
#ifndef EDGESER_TESTS_CHECK_H
#define EDGESER_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>

static unsigned long check_passed_ = 0;
static unsigned long check_failed_ = 0;

static inline int check_true_(int ok, const char *file, int line, const char *expr)
{
    if (ok) {
        ++check_passed_;
    } else {
        ++check_failed_;
        fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, expr);
    }
    return ok;
}

static inline int check_status_(long got, long expected, const char *file, int line,
                                const char *expr, const char *expected_expr)
{
    if (got == expected) {
        ++check_passed_;
        return 1;
    }
    ++check_failed_;
    fprintf(stderr, "%s:%d: CHECK_STATUS failed: %s == %ld, expected %s == %ld\n", file, line,
            expr, got, expected_expr, expected);
    return 0;
}

static inline int check_near_(double a, double b, double tol, const char *file, int line,
                              const char *a_expr, const char *b_expr)
{
    double diff = fabs(a - b);
    if (diff <= tol) { /* false for NaN */
        ++check_passed_;
        return 1;
    }
    ++check_failed_;
    fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s == %.17g, %s == %.17g, |diff| %.3g > %.3g\n",
            file, line, a_expr, a, b_expr, b, diff, tol);
    return 0;
}

static inline int check_report(const char *suite)
{
    printf("%s: %lu passed, %lu failed\n", suite, check_passed_, check_failed_);
    fflush(stdout);
    return check_failed_ == 0 ? 0 : 1;
}

#define CHECK(cond) check_true_((cond) ? 1 : 0, __FILE__, __LINE__, #cond)
#define CHECK_STATUS(expr, expected) \
    check_status_((long)(expr), (long)(expected), __FILE__, __LINE__, #expr, #expected)
#define CHECK_NEAR(a, b, tol) \
    check_near_((double)(a), (double)(b), (double)(tol), __FILE__, __LINE__, #a, #b)

#endif /* EDGESER_TESTS_CHECK_H */
