/*
 * ketama_ref.c - independent reference model of twemproxy's ketama
 * distribution (distribution: ketama, hash: md5), used to generate the test
 * vectors in this directory.
 *
 * This is a re-implementation written from a reading of
 *   twitter/twemproxy src/hashkit/nc_ketama.c  (ketama_update, ketama_dispatch)
 *   twitter/twemproxy src/hashkit/nc_md5.c     (hash_md5)
 * and, for the optional "libketama" variant, RJ/ketama libketama/ketama.c
 * (ketama_create_continuum, ketama_get_server).  No upstream code is copied;
 * MD5 comes from OpenSSL's libcrypto.
 *
 * Build:
 *   cc -std=c11 -O2 -Wall -Wextra -ffp-contract=off \
 *      -o ketama_ref ketama_ref.c -lcrypto -lm
 *
 * Usage:
 *   ketama_ref [--algo twemproxy|libketama] [--head N] CONFIG KEYS
 *       CONFIG: one server per line, "<name> <weight>" (whitespace separated;
 *               blank lines and lines starting with '#' are ignored).
 *       KEYS:   one key per line, hex encoded (an empty line is the empty key).
 *       Prints one JSON object describing the continuum and the server each
 *       key is dispatched to.
 *   ketama_ref --libketama-test CONFIG
 *       Prints what RJ/ketama's libketama/ketama_test.c prints for this server
 *       file (keys "0".."999999"), so that `| md5sum` can be compared with the
 *       checksum hard-coded in libketama/test.sh.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define MAX_SERVERS 1024
#define MAX_NAME 256
#define MAX_KEY 4096

enum algo { ALGO_TWEMPROXY, ALGO_LIBKETAMA };

struct server {
    char name[MAX_NAME];
    uint32_t weight;
    uint32_t npoints;   /* points this server gets on the continuum */
    double formula;     /* float value that was floored (for the record) */
};

struct point {
    uint32_t value;
    uint32_t server;    /* index into the server table */
};

static struct server servers[MAX_SERVERS];
static uint32_t nservers;
static struct point *continuum;
static uint32_t npoints;

static void die(const char *msg)
{
    fprintf(stderr, "ketama_ref: %s\n", msg);
    exit(2);
}

static void md5(const void *data, size_t len, unsigned char out[16])
{
    unsigned int outlen = 0;

    if (!EVP_Digest(data, len, out, &outlen, EVP_md5(), NULL) || outlen != 16) {
        die("EVP_Digest(md5) failed");
    }
}

/* Little-endian uint32 made of digest bytes [4*word .. 4*word+3]. */
static uint32_t digest_word(const unsigned char d[16], unsigned word)
{
    const unsigned char *p = d + 4 * word;

    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* twemproxy hash_md5: first four digest bytes, little endian. */
static uint32_t key_hash(const unsigned char *key, size_t len)
{
    unsigned char d[16];

    md5(key, len, d);
    return digest_word(d, 0);
}

/*
 * Number of continuum points for one server.
 *
 * twemproxy (and libmemcached's weighted ketama) evaluate
 *     floorf((float)(pct * 160 / 4 * (float)nlive + 0.0000000001)) * 4
 * with pct a float.  Under FLT_EVAL_METHOD == 0 (x86-64, arm64) each of the
 * three multiplicative steps is rounded to float, the 1e-10 literal makes the
 * addition happen in double, and the explicit cast rounds the sum back to
 * float before floorf.  Each rounding step is spelled out here with float
 * temporaries so the result does not depend on the compiler's excess
 * precision.
 *
 * libketama evaluates floorf(pct * 40.0 * (float)numservers): the product is
 * computed in double (40.0 is a double literal) and converted to float when
 * passed to floorf; every hash yields four points.
 */
static uint32_t points_for(enum algo algo, uint32_t weight, uint32_t total, uint32_t nlive,
                           double *formula)
{
    float pct = (float)weight / (float)total;

    if (algo == ALGO_TWEMPROXY) {
        float a = pct * (float)160;
        float b = a / (float)4;
        float c = b * (float)nlive;
        double sum = (double)c + 0.0000000001;
        float arg = (float)sum;
        float fl = floorf(arg);
        float times4 = fl * (float)4;

        *formula = (double)arg;
        return (uint32_t)times4;
    } else {
        double prod = (double)pct * 40.0 * (double)(float)nlive;
        float arg = (float)prod;
        uint32_t ks = (uint32_t)floorf(arg);

        *formula = (double)arg;
        return ks * 4;
    }
}

static int point_cmp(const void *a, const void *b)
{
    const struct point *x = a, *y = b;

    if (x->value < y->value) {
        return -1;
    }
    return x->value > y->value ? 1 : 0;
}

static void build_continuum(enum algo algo)
{
    uint32_t total = 0, s, k, cap;

    for (s = 0; s < nservers; s++) {
        total += servers[s].weight;
    }
    cap = 0;
    for (s = 0; s < nservers; s++) {
        servers[s].npoints = points_for(algo, servers[s].weight, total, nservers,
                                        &servers[s].formula);
        cap += servers[s].npoints;
    }
    continuum = calloc(cap ? cap : 1, sizeof(*continuum));
    if (continuum == NULL) {
        die("out of memory");
    }

    npoints = 0;
    for (s = 0; s < nservers; s++) {
        for (k = 0; k < servers[s].npoints / 4; k++) {
            char label[MAX_NAME + 16];
            unsigned char d[16];
            unsigned w;
            int n = snprintf(label, sizeof(label), "%s-%u", servers[s].name, k);

            if (n < 0 || (size_t)n >= sizeof(label)) {
                die("server name too long");
            }
            md5(label, (size_t)n, d);
            for (w = 0; w < 4; w++) {
                continuum[npoints].value = digest_word(d, w);
                continuum[npoints].server = s;
                npoints++;
            }
        }
    }
    qsort(continuum, npoints, sizeof(*continuum), point_cmp);
}

/* twemproxy ketama_dispatch: first point whose value is >= hash, else point 0. */
static uint32_t dispatch_twemproxy(uint32_t hash)
{
    uint32_t lo = 0, hi = npoints;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (continuum[mid].value < hash) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return hi == npoints ? 0 : hi;
}

/*
 * libketama ketama_get_server: bisection that stops at the point p with
 * prev(p) < hash <= p (prev of the first point taken as 0) and falls back to
 * point 0 when the search range empties or reaches the end.
 */
static uint32_t dispatch_libketama(uint32_t hash)
{
    int lo = 0, hi = (int)npoints;

    for (;;) {
        int mid = (lo + hi) / 2;
        uint32_t here, before;

        if (mid == (int)npoints) {
            return 0;
        }
        here = continuum[mid].value;
        before = mid == 0 ? 0 : continuum[mid - 1].value;
        if (hash <= here && hash > before) {
            return (uint32_t)mid;
        }
        if (here < hash) {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
        if (lo > hi) {
            return 0;
        }
    }
}

static uint32_t dispatch(enum algo algo, uint32_t hash)
{
    return algo == ALGO_TWEMPROXY ? dispatch_twemproxy(hash) : dispatch_libketama(hash);
}

static void read_config(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024];

    if (f == NULL) {
        die("cannot open config");
    }
    nservers = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char name[MAX_NAME];
        unsigned long weight;

        if (line[0] == '#' || strspn(line, " \t\r\n") == strlen(line)) {
            continue;
        }
        if (sscanf(line, "%255s %lu", name, &weight) != 2 || weight == 0 ||
            weight > UINT32_MAX) {
            die("bad config line");
        }
        if (nservers == MAX_SERVERS) {
            die("too many servers");
        }
        strcpy(servers[nservers].name, name);
        servers[nservers].weight = (uint32_t)weight;
        nservers++;
    }
    fclose(f);
    if (nservers == 0) {
        die("no servers");
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decode one hex line into buf; returns the byte length. */
static size_t unhex(const char *line, unsigned char *buf)
{
    size_t n = 0;

    while (line[0] != '\0' && line[0] != '\n' && line[0] != '\r') {
        int hi = hexval((unsigned char)line[0]);
        int lo = line[1] ? hexval((unsigned char)line[1]) : -1;

        if (hi < 0 || lo < 0 || n == MAX_KEY) {
            die("bad hex key");
        }
        buf[n++] = (unsigned char)(hi * 16 + lo);
        line += 2;
    }
    return n;
}

/* JSON string; bytes >= 0x80 are passed through (input is expected to be UTF-8). */
static void json_str(const unsigned char *s, size_t len)
{
    size_t i;

    putchar('"');
    for (i = 0; i < len; i++) {
        unsigned char c = s[i];

        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

static void json_name(uint32_t s)
{
    json_str((const unsigned char *)servers[s].name, strlen(servers[s].name));
}

static void print_pool(enum algo algo, const char *keys_path, uint32_t head)
{
    FILE *f = fopen(keys_path, "r");
    static char line[2 * MAX_KEY + 4];
    static unsigned char key[MAX_KEY];
    uint32_t s, i, ncoll = 0;
    int first = 1;

    if (f == NULL) {
        die("cannot open keys");
    }
    printf("{\n  \"algorithm\": \"%s\",\n", algo == ALGO_TWEMPROXY ? "twemproxy" : "libketama");
    printf("  \"flt_eval_method\": %d,\n", (int)FLT_EVAL_METHOD);
    printf("  \"servers\": [\n");
    for (s = 0; s < nservers; s++) {
        printf("    {\"name\": ");
        json_name(s);
        printf(", \"weight\": %u, \"points\": %u, \"floored_value\": %.17g}%s\n",
               servers[s].weight, servers[s].npoints, servers[s].formula,
               s + 1 < nservers ? "," : "");
    }
    printf("  ],\n  \"total_points\": %u,\n  \"continuum_head\": [\n", npoints);
    for (i = 0; i < head && i < npoints; i++) {
        printf("    {\"value\": %u, \"server\": ", continuum[i].value);
        json_name(continuum[i].server);
        printf("}%s\n", i + 1 < head && i + 1 < npoints ? "," : "");
    }
    printf("  ],\n  \"max_point\": {\"value\": %u, \"server\": ",
           npoints ? continuum[npoints - 1].value : 0);
    if (npoints) {
        json_name(continuum[npoints - 1].server);
    } else {
        printf("null");
    }
    printf("},\n  \"collisions\": [");
    for (i = 0; i + 1 < npoints; i++) {
        if (continuum[i].value == continuum[i + 1].value &&
            continuum[i].server != continuum[i + 1].server) {
            printf("%s\n    {\"value\": %u, \"servers\": [", ncoll ? "," : "",
                   continuum[i].value);
            json_name(continuum[i].server);
            printf(", ");
            json_name(continuum[i + 1].server);
            printf("]}");
            ncoll++;
        }
    }
    printf("%s],\n  \"keys\": [", ncoll ? "\n  " : "");
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t len = unhex(line, key);
        uint32_t h = key_hash(key, len);

        printf("%s\n    {\"key\": ", first ? "" : ",");
        json_str(key, len);
        printf(", \"hash\": %u, \"server\": ", h);
        if (npoints == 0) {
            printf("null}");
        } else {
            uint32_t idx = dispatch(algo, h);

            json_name(continuum[idx].server);
            printf(", \"point\": %u}", continuum[idx].value);
        }
        first = 0;
    }
    printf("\n  ]\n}\n");
    fclose(f);
}

/* Output format of RJ/ketama libketama/ketama_test.c (empty error line first). */
static void libketama_test(void)
{
    uint32_t i;

    printf("\n");
    for (i = 0; i < 1000000; i++) {
        char k[16];
        int n = snprintf(k, sizeof(k), "%u", i);
        uint32_t h = key_hash((const unsigned char *)k, (size_t)n);
        uint32_t idx = dispatch_libketama(h);

        printf("%u %u %s\n", h, continuum[idx].value, servers[continuum[idx].server].name);
    }
}

int main(int argc, char **argv)
{
    enum algo algo = ALGO_TWEMPROXY;
    uint32_t head = 8;
    int i = 1;

    if (argc == 3 && strcmp(argv[1], "--libketama-test") == 0) {
        read_config(argv[2]);
        build_continuum(ALGO_LIBKETAMA);
        libketama_test();
        return 0;
    }
    while (i + 2 < argc) {
        if (strcmp(argv[i], "--algo") == 0) {
            if (strcmp(argv[i + 1], "twemproxy") == 0) {
                algo = ALGO_TWEMPROXY;
            } else if (strcmp(argv[i + 1], "libketama") == 0) {
                algo = ALGO_LIBKETAMA;
            } else {
                die("unknown --algo");
            }
            i += 2;
        } else if (strcmp(argv[i], "--head") == 0) {
            head = (uint32_t)strtoul(argv[i + 1], NULL, 10);
            i += 2;
        } else {
            break;
        }
    }
    if (argc - i != 2) {
        fprintf(stderr,
                "usage: %s [--algo twemproxy|libketama] [--head N] CONFIG KEYS\n"
                "       %s --libketama-test CONFIG\n",
                argv[0], argv[0]);
        return 2;
    }
    read_config(argv[i]);
    build_continuum(algo);
    print_pool(algo, argv[i + 1], head);
    free(continuum);
    return 0;
}
