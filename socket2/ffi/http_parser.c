/* socket2's HTTP/1.1 message-head parser and chunked-body decoder.
 *
 * Written for socket2 from RFC 9110 and RFC 9112; no other parser's source
 * is in here.  socket2/http/_parser_py.py is its Python twin and gives the
 * same answer, the same error code and the same error offset for every
 * input (tests/test_http_parser.py holds them to it): when changing a rule
 * here, change it there.
 *
 * One call parses a whole head out of the caller's buffer.  The answer is
 * a return code and a few integers in `out` (indices S2H_*); the strings
 * (method, target or reason, each field name lowercased and its value) are
 * copied into `flat`, separated by NUL bytes (a NUL can occur in none of
 * them: it is refused everywhere), so that Python splits them with one
 * call.  Nothing calls back into Python.
 *
 * Return codes: S2H_COMPLETE (0: the head ends at out[S2H_END]),
 * S2H_INCOMPLETE (-1: need more bytes), or a positive error code
 * (socket2/http/errors.py maps each to its status and message; the byte
 * offset that decided it is in out[S2H_ERRPOS]).
 *
 * How incomplete input is judged.  The buffer is scanned left to right,
 * and at every byte the checks run in one order: is the byte there (else
 * INCOMPLETE), is it past a size limit (else the limit's error), is it
 * valid where it stands (else that error).  So the answer for a prefix of
 * a message is INCOMPLETE or the answer for the whole message: feeding a
 * head byte by byte gives the same result as feeding it whole, and a bad
 * byte is refused as soon as it arrives, not when the head is complete.
 * Checks that need the whole head (the framing decision, Host) run last.
 *
 * What is refused, and why (each is a way two parsers can read one
 * message differently):
 * - lines end with CRLF only: a bare CR or bare LF anywhere is an error;
 * - request line: method SP request-target SP HTTP-version, single spaces;
 *   the method a token, the target visible ASCII without '#', the version
 *   exactly "HTTP/" DIGIT "." DIGIT (1.0 and 1.1 are served, other well
 *   formed versions get 505); '*' only with OPTIONS, authority-form only
 *   with CONNECT; empty lines before the request line are skipped
 *   (RFC 9112 section 2.2);
 * - field lines: a token name, then ':' at once (no whitespace before the
 *   colon), a value of HTAB, SP, VCHAR and obs-text (no control character,
 *   no NUL, no DEL); a line that starts with whitespace (obs-fold) is an
 *   error;
 * - framing (RFC 9112 section 6): Content-Length with Transfer-Encoding;
 *   a Content-Length that is not plain decimal digits (sign, leading zero,
 *   whitespace inside, empty) or that overflows 63 bits; several
 *   Content-Lengths that differ (identical values, in repeated fields or as
 *   "5, 5", are one value: RFC 9110 section 8.6); Transfer-Encoding in an
 *   HTTP/1.0 message; chunked not last, chunked twice, chunked with
 *   parameters, an empty list element (",chunked"); any coding but chunked
 *   (501: none is implemented); no Host, several Hosts or a Host that is
 *   not a host[:port] in an HTTP/1.1 request.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef unsigned char u8;

/* ---------------------------------------------------------------- tables */

#define C_TCHAR  1   /* token character (RFC 9110 section 5.6.2) */
#define C_FIELD  2   /* field-value byte: HTAB SP VCHAR obs-text */
#define C_TARGET 4   /* request-target byte: VCHAR except '#' */
#define C_HEX    8
#define C_QDTEXT 16  /* quoted-string text (RFC 9110 section 5.6.4) */
#define C_HOST   32  /* reg-name byte: unreserved pct sub-delims but ',' */

static u8 cls[256];
static u8 lower[256];
static int tables_ready;

/* Fills the tables.  socket2/http/_parser_c.py calls it once at import,
 * under the GIL, before any parse; the entry points call it too for a C
 * caller that did not (idempotent). */
void s2h_init(void)
{
    int c;
    for (c = 0; c < 256; c++) {
        u8 f = 0;
        int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
                    || (c >= 'A' && c <= 'Z');
        if (alnum || (c && strchr("!#$%&'*+-.^_`|~", c)))
            f |= C_TCHAR;
        if (c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80)
            f |= C_FIELD;
        if (c >= 0x21 && c <= 0x7e && c != '#')
            f |= C_TARGET;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
                || (c >= 'A' && c <= 'F'))
            f |= C_HEX;
        if (c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b)
                || (c >= 0x5d && c <= 0x7e) || c >= 0x80)
            f |= C_QDTEXT;
        if (alnum || (c && strchr("-._~%!$&'()*+;=", c)))
            f |= C_HOST;
        cls[c] = f;
        lower[c] = (u8)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    tables_ready = 1;
}

/* ----------------------------------------------------------- the answers */

#define S2H_COMPLETE 0
#define S2H_INCOMPLETE (-1)
#define S2H_CHUNK_DATA (-2)
#define S2H_CHUNK_TRAILER (-3)
#define S2H_CHUNK_DONE (-4)

/* Error codes: socket2/http/errors.py has the table (status, message). */
#define S2H_E_METHOD 1
#define S2H_E_REQUEST_LINE 2
#define S2H_E_TARGET 3
#define S2H_E_TARGET_FORM 4
#define S2H_E_VERSION 5
#define S2H_E_VERSION_UNSUPPORTED 6
#define S2H_E_LINE_ENDING 7
#define S2H_E_REQUEST_LINE_TOO_LONG 8
#define S2H_E_STATUS_LINE 9
#define S2H_E_STATUS_CODE 10
#define S2H_E_STATUS_LINE_TOO_LONG 11
#define S2H_E_FIELD_NAME 12
#define S2H_E_SPACE_IN_NAME 13
#define S2H_E_NO_COLON 14
#define S2H_E_OBS_FOLD 15
#define S2H_E_FIELD_VALUE 16
#define S2H_E_HEADERS_TOO_LARGE 17
#define S2H_E_TOO_MANY_HEADERS 18
#define S2H_E_NO_HOST 19
#define S2H_E_DUPLICATE_HOST 20
#define S2H_E_HOST 21
#define S2H_E_CONTENT_LENGTH 22
#define S2H_E_CONTENT_LENGTH_CONFLICT 23
#define S2H_E_CONTENT_LENGTH_OVERFLOW 24
#define S2H_E_CL_AND_TE 25
#define S2H_E_TRANSFER_ENCODING 26
#define S2H_E_CHUNKED_NOT_LAST 27
#define S2H_E_CHUNKED_TWICE 28
#define S2H_E_UNKNOWN_CODING 29
#define S2H_E_TE_HTTP10 30
#define S2H_E_CONNECTION 31
#define S2H_E_CHUNK_SIZE 32
#define S2H_E_CHUNK_SIZE_OVERFLOW 33
#define S2H_E_CHUNK_EXT 34
#define S2H_E_CHUNK_LINE_TOO_LONG 35
#define S2H_E_CHUNK_DATA_CRLF 36
#define S2H_E_TRAILERS_TOO_LARGE 37
#define S2H_E_TOO_MANY_TRAILERS 38

/* out[] of a head parse */
#define S2H_END 0       /* offset just past the head's final CRLF */
#define S2H_VERSION 1   /* 10 or 11 */
#define S2H_STATUS 2    /* responses */
#define S2H_NFIELDS 3
#define S2H_BODY 4      /* S2H_BODY_* */
#define S2H_LENGTH 5    /* Content-Length, or -1 */
#define S2H_FLAGS 6     /* S2H_F_* */
#define S2H_FLAT 7      /* bytes written to flat */
#define S2H_ERRPOS 8    /* offset of the byte that decided an error */
#define S2H_NOUT 9      /* then 4 per field: name, name end, value, end */

#define S2H_BODY_NONE 0
#define S2H_BODY_LENGTH 1
#define S2H_BODY_CHUNKED 2
#define S2H_BODY_CLOSE 3   /* a response read until the connection closes */

#define S2H_F_KEEP_ALIVE 1
#define S2H_F_EXPECT_CONTINUE 2
#define S2H_F_UPGRADE 4
#define S2H_F_EXPECT_OTHER 8

#define S2H_METHOD_OTHER 0
#define S2H_METHOD_HEAD 1
#define S2H_METHOD_CONNECT 2

#define IS_WS(c) ((c) == ' ' || (c) == '\t')

static int fail(int64_t *out, size_t pos, int code)
{
    out[S2H_ERRPOS] = (int64_t)pos;
    return code;
}

/* The next byte at p: INCOMPLETE when it has not arrived, `toolong` when
 * it lies past the limit. */
#define NEED(p, lim, toolong) do { \
        if ((p) >= end) return S2H_INCOMPLETE; \
        if ((p) >= (lim)) return fail(out, (p), (toolong)); \
    } while (0)

static int ieq(const u8 *s, size_t n, const char *lit)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (lower[s[i]] != (u8)lit[i])
            return 0;
    return lit[n] == 0;
}

/* ------------------------------------------------------------ field lines */

/* One field line at p (b[p] is there and is neither CR, LF nor
 * whitespace).  On success stores name, name end, value, value end (the
 * value without its surrounding whitespace) in f and moves *pp past the
 * CRLF. */
static int field_line(const u8 *b, size_t *pp, size_t end, size_t lim,
                      int toolong, int64_t *out, int64_t *f)
{
    size_t p = *pp, ns = p, vs, ve, e = end < lim ? end : lim;
    u8 c;
    while (p < e && (cls[b[p]] & C_TCHAR))
        p++;
    NEED(p, lim, toolong);
    c = b[p];
    if (c != ':') {
        if (IS_WS(c))
            return fail(out, p, S2H_E_SPACE_IN_NAME);
        if (c == '\r' || c == '\n')
            return fail(out, p, S2H_E_NO_COLON);
        return fail(out, p, S2H_E_FIELD_NAME);
    }
    if (p == ns)
        return fail(out, p, S2H_E_FIELD_NAME);
    f[1] = (int64_t)p;
    p++;
    while (p < e && IS_WS(b[p]))
        p++;
    vs = p;
    while (p < e && (cls[b[p]] & C_FIELD))
        p++;
    NEED(p, lim, toolong);
    c = b[p];
    if (c != '\r')
        return fail(out, p, c == '\n' ? S2H_E_LINE_ENDING : S2H_E_FIELD_VALUE);
    ve = p;
    while (ve > vs && IS_WS(b[ve - 1]))
        ve--;
    NEED(p + 1, lim, toolong);
    if (b[p + 1] != '\n')
        return fail(out, p + 1, S2H_E_LINE_ENDING);
    f[0] = (int64_t)ns;
    f[2] = (int64_t)vs;
    f[3] = (int64_t)ve;
    *pp = p + 2;
    return S2H_COMPLETE;
}

/* The field section at p, up to and including its empty line; at most
 * max_head bytes and max_fields lines.  Fields go to out[S2H_NOUT...]. */
static int field_section(const u8 *b, size_t *pp, size_t end,
                         size_t max_head, int max_fields, int64_t *out)
{
    size_t p = *pp, lim = p + max_head;
    int nf = 0, r;
    for (;;) {
        u8 c;
        NEED(p, lim, S2H_E_HEADERS_TOO_LARGE);
        c = b[p];
        if (c == '\r') {
            NEED(p + 1, lim, S2H_E_HEADERS_TOO_LARGE);
            if (b[p + 1] != '\n')
                return fail(out, p + 1, S2H_E_LINE_ENDING);
            *pp = p + 2;
            out[S2H_NFIELDS] = nf;
            return S2H_COMPLETE;
        }
        if (c == '\n')
            return fail(out, p, S2H_E_LINE_ENDING);
        if (IS_WS(c))
            return fail(out, p, S2H_E_OBS_FOLD);
        if (nf >= max_fields)
            return fail(out, p, S2H_E_TOO_MANY_HEADERS);
        r = field_line(b, &p, end, lim, S2H_E_HEADERS_TOO_LARGE, out,
                       out + S2H_NOUT + 4 * nf);
        if (r != S2H_COMPLETE)
            return r;
        nf++;
    }
}

/* ------------------------------------------------------ field values */

/* Content-Length: 1*DIGIT, no leading zero; a list of identical values
 * counts as one.  *cl is -1 until a value was seen. */
static int content_length(const u8 *b, size_t p, size_t e, int64_t *cl,
                          int64_t *out)
{
    for (;;) {
        size_t s;
        int64_t v = 0;
        while (p < e && IS_WS(b[p]))
            p++;
        s = p;
        while (p < e && b[p] >= '0' && b[p] <= '9') {
            int d = b[p] - '0';
            if (v > (INT64_MAX - d) / 10)
                return fail(out, p, S2H_E_CONTENT_LENGTH_OVERFLOW);
            v = v * 10 + d;
            p++;
        }
        if (p == s || (b[s] == '0' && p - s > 1))
            return fail(out, s, S2H_E_CONTENT_LENGTH);
        while (p < e && IS_WS(b[p]))
            p++;
        if (p < e && b[p] != ',')
            return fail(out, p, S2H_E_CONTENT_LENGTH);
        if (*cl >= 0 && *cl != v)
            return fail(out, s, S2H_E_CONTENT_LENGTH_CONFLICT);
        *cl = v;
        if (p == e)
            return S2H_COMPLETE;
        p++;
    }
}

/* Transfer-Encoding: 1#transfer-coding, each a token with optional
 * parameters (token BWS "=" BWS token / quoted-string).  Counts chunked,
 * remembers whether the last coding was chunked and whether another one
 * appeared. */
static int transfer_encoding(const u8 *b, size_t p, size_t e, int *nchunked,
                             int *last_chunked, int *other, int64_t *out)
{
    for (;;) {
        size_t s;
        int chunked;
        while (p < e && IS_WS(b[p]))
            p++;
        s = p;
        while (p < e && (cls[b[p]] & C_TCHAR))
            p++;
        if (p == s)
            return fail(out, p, S2H_E_TRANSFER_ENCODING);
        chunked = p - s == 7 && ieq(b + s, 7, "chunked");
        while (p < e && IS_WS(b[p]))
            p++;
        while (p < e && b[p] == ';') {
            size_t t;
            if (chunked)
                return fail(out, p, S2H_E_TRANSFER_ENCODING);
            p++;
            while (p < e && IS_WS(b[p]))
                p++;
            t = p;
            while (p < e && (cls[b[p]] & C_TCHAR))
                p++;
            if (p == t)
                return fail(out, p, S2H_E_TRANSFER_ENCODING);
            while (p < e && IS_WS(b[p]))
                p++;
            if (p == e || b[p] != '=')
                return fail(out, p, S2H_E_TRANSFER_ENCODING);
            p++;
            while (p < e && IS_WS(b[p]))
                p++;
            if (p < e && b[p] == '"') {
                p++;
                for (;;) {
                    if (p == e)
                        return fail(out, p, S2H_E_TRANSFER_ENCODING);
                    if (b[p] == '"')
                        break;
                    if (b[p] == '\\') {
                        p++;
                        if (p == e || !(cls[b[p]] & C_FIELD))
                            return fail(out, p, S2H_E_TRANSFER_ENCODING);
                    } else if (!(cls[b[p]] & C_QDTEXT)) {
                        return fail(out, p, S2H_E_TRANSFER_ENCODING);
                    }
                    p++;
                }
                p++;
            } else {
                t = p;
                while (p < e && (cls[b[p]] & C_TCHAR))
                    p++;
                if (p == t)
                    return fail(out, p, S2H_E_TRANSFER_ENCODING);
            }
            while (p < e && IS_WS(b[p]))
                p++;
        }
        *nchunked += chunked;
        *last_chunked = chunked;
        *other |= !chunked;
        if (p == e)
            return S2H_COMPLETE;
        if (b[p] != ',')
            return fail(out, p, S2H_E_TRANSFER_ENCODING);
        p++;
    }
}

/* Connection: #token; empty elements are ignored (RFC 9110 5.6.1). */
static int connection(const u8 *b, size_t p, size_t e, int *flags,
                      int64_t *out)
{
    for (;;) {
        size_t s;
        while (p < e && IS_WS(b[p]))
            p++;
        s = p;
        while (p < e && (cls[b[p]] & C_TCHAR))
            p++;
        if (p - s == 5 && ieq(b + s, 5, "close"))
            *flags |= 1;
        else if (p - s == 10 && ieq(b + s, 10, "keep-alive"))
            *flags |= 2;
        else if (p - s == 7 && ieq(b + s, 7, "upgrade"))
            *flags |= 4;
        while (p < e && IS_WS(b[p]))
            p++;
        if (p == e)
            return S2H_COMPLETE;
        if (b[p] != ',')
            return fail(out, p, S2H_E_CONNECTION);
        p++;
    }
}

/* Host: uri-host [":" port], uri-host an IP-literal in brackets or a
 * reg-name / IPv4 address (no ',', '@', '/', whitespace); may be empty. */
static int host_ok(const u8 *b, size_t p, size_t e)
{
    if (p < e && b[p] == '[') {
        size_t s = ++p;
        while (p < e && ((cls[b[p]] & C_HOST) || b[p] == ':'))
            p++;
        if (p == s || p == e || b[p] != ']')
            return 0;
        p++;
    } else {
        while (p < e && (cls[b[p]] & C_HOST))
            p++;
    }
    if (p < e && b[p] == ':') {
        p++;
        while (p < e && b[p] >= '0' && b[p] <= '9')
            p++;
    }
    return p == e;
}

/* ------------------------------------------------- the framing decision */

/* Reads the fields that frame the message or steer the connection and
 * decides the body (RFC 9112 section 6.3). */
static int framing(const u8 *b, int64_t *out, int is_request, int version,
                   int status, int method)
{
    int i, nf = (int)out[S2H_NFIELDS], hosts = 0, te = 0, nchunked = 0;
    int last_chunked = 0, other = 0, conn = 0, upgrade = 0, flags = 0, r;
    int64_t cl = -1;
    size_t cl_pos = 0, te_pos = 0;
    for (i = 0; i < nf; i++) {
        const int64_t *f = out + S2H_NOUT + 4 * i;
        const u8 *n = b + f[0];
        size_t nl = (size_t)(f[1] - f[0]), vs = (size_t)f[2];
        size_t ve = (size_t)f[3];
        switch (nl) {
        case 4:
            if (ieq(n, 4, "host") && is_request) {
                if (++hosts > 1)
                    return fail(out, (size_t)f[0], S2H_E_DUPLICATE_HOST);
                if (!host_ok(b, vs, ve))
                    return fail(out, vs, S2H_E_HOST);
            }
            break;
        case 6:
            if (ieq(n, 6, "expect")) {
                if (ve - vs == 12 && ieq(b + vs, 12, "100-continue"))
                    flags |= S2H_F_EXPECT_CONTINUE;
                else
                    flags |= S2H_F_EXPECT_OTHER;
            }
            break;
        case 7:
            if (ieq(n, 7, "upgrade"))
                upgrade = 1;
            break;
        case 10:
            if (ieq(n, 10, "connection")) {
                r = connection(b, vs, ve, &conn, out);
                if (r)
                    return r;
            }
            break;
        case 14:
            if (ieq(n, 14, "content-length")) {
                r = content_length(b, vs, ve, &cl, out);
                if (r)
                    return r;
                if (!cl_pos)
                    cl_pos = (size_t)f[0];
            }
            break;
        case 17:
            if (ieq(n, 17, "transfer-encoding")) {
                r = transfer_encoding(b, vs, ve, &nchunked, &last_chunked,
                                      &other, out);
                if (r)
                    return r;
                if (!te++)
                    te_pos = (size_t)f[0];
            }
            break;
        }
    }
    if (is_request && version == 11 && !hosts)
        return fail(out, (size_t)out[S2H_END], S2H_E_NO_HOST);
    out[S2H_LENGTH] = -1;
    if (te) {
        if (version == 10)
            return fail(out, te_pos, S2H_E_TE_HTTP10);
        if (cl >= 0)
            return fail(out, cl_pos > te_pos ? cl_pos : te_pos,
                        S2H_E_CL_AND_TE);
        if (nchunked > 1)
            return fail(out, te_pos, S2H_E_CHUNKED_TWICE);
        if (nchunked && !last_chunked)
            return fail(out, te_pos, S2H_E_CHUNKED_NOT_LAST);
        if (other)
            return fail(out, te_pos, S2H_E_UNKNOWN_CODING);
        out[S2H_BODY] = S2H_BODY_CHUNKED;
    } else if (cl >= 0) {
        out[S2H_BODY] = S2H_BODY_LENGTH;
        out[S2H_LENGTH] = cl;
    } else {
        out[S2H_BODY] = is_request ? S2H_BODY_NONE : S2H_BODY_CLOSE;
    }
    if (!is_request && (method == S2H_METHOD_HEAD || status < 200
                        || status == 204 || status == 304
                        || (method == S2H_METHOD_CONNECT && status < 300))) {
        out[S2H_BODY] = S2H_BODY_NONE;
        out[S2H_LENGTH] = -1;
    }
    if (version == 11 ? !(conn & 1) : (conn & 2) && !(conn & 1))
        flags |= S2H_F_KEEP_ALIVE;
    if (out[S2H_BODY] == S2H_BODY_CLOSE)
        flags &= ~S2H_F_KEEP_ALIVE;
    if (!is_request || version != 11)
        flags &= ~S2H_F_EXPECT_CONTINUE;
    if (!is_request)
        flags &= ~S2H_F_EXPECT_OTHER;
    if ((conn & 4) && upgrade)
        flags |= S2H_F_UPGRADE;
    out[S2H_FLAGS] = flags;
    return S2H_COMPLETE;
}

/* Copies the fields into flat after `w` bytes: "\0name\0value" each, the
 * name lowercased.  Returns the new length. */
static size_t flatten_fields(const u8 *b, const int64_t *out, u8 *flat,
                             size_t w)
{
    int i, nf = (int)out[S2H_NFIELDS];
    for (i = 0; i < nf; i++) {
        const int64_t *f = out + S2H_NOUT + 4 * i;
        size_t j;
        flat[w++] = 0;
        for (j = (size_t)f[0]; j < (size_t)f[1]; j++)
            flat[w++] = lower[b[j]];
        flat[w++] = 0;
        memcpy(flat + w, b + f[2], (size_t)(f[3] - f[2]));
        w += (size_t)(f[3] - f[2]);
    }
    return w;
}

/* "HTTP/" DIGIT "." DIGIT at p; stores major * 10 + minor. */
static int version_at(const u8 *b, size_t *pp, size_t end, size_t lim,
                      int toolong, int *version, int64_t *out)
{
    static const char pat[] = "HTTP/0.0";
    size_t p = *pp;
    int i;
    for (i = 0; i < 8; i++, p++) {
        NEED(p, lim, toolong);
        if (pat[i] == '0' ? !(b[p] >= '0' && b[p] <= '9') : b[p] != pat[i])
            return fail(out, p, S2H_E_VERSION);
    }
    *version = (b[p - 3] - '0') * 10 + (b[p - 1] - '0');
    *pp = p;
    return S2H_COMPLETE;
}

/* ------------------------------------------------------------ the parser */

/* A parser's limits and where it writes its answer (owned by the caller:
 * out holds S2H_NOUT + 4 * max_fields integers, flat max_line + max_head
 * bytes).  Passed as one pointer: every argument of a cffi call costs. */
typedef struct {
    size_t max_line;    /* the request or status line, CRLF excluded */
    size_t max_head;    /* the field section, its empty line included */
    int max_fields;
    int64_t *out;
    char *flat;
} s2h_parser;

/* -------------------------------------------------------------- requests */

int s2h_parse_request(const s2h_parser *ps, const char *buf, size_t start,
                      size_t end)
{
    const u8 *b = (const u8 *)buf;
    int64_t *out = ps->out;
    char *flat = ps->flat;
    size_t max_head = ps->max_head;
    int max_fields = ps->max_fields;
    size_t p = start, lim = start + ps->max_line + 1, ms, ts, te, e;
    int version, r;
    u8 c;
    if (!tables_ready)
        s2h_init();
    /* RFC 9112 2.2: empty lines before the request line are ignored; they
     * count towards the request line's limit. */
    for (;;) {
        NEED(p, lim, S2H_E_REQUEST_LINE_TOO_LONG);
        if (b[p] == '\r') {
            if (p + 1 >= end)
                return S2H_INCOMPLETE;
            if (b[p + 1] != '\n')
                return fail(out, p + 1, S2H_E_LINE_ENDING);
            p += 2;
        } else if (b[p] == '\n') {
            return fail(out, p, S2H_E_LINE_ENDING);
        } else {
            break;
        }
    }
    e = end < lim ? end : lim;
    ms = p;
    while (p < e && (cls[b[p]] & C_TCHAR))
        p++;
    NEED(p, lim, S2H_E_REQUEST_LINE_TOO_LONG);
    if (p == ms || b[p] != ' ')
        return fail(out, p, S2H_E_METHOD);
    ts = ++p;
    while (p < e && (cls[b[p]] & C_TARGET))
        p++;
    NEED(p, lim, S2H_E_REQUEST_LINE_TOO_LONG);
    c = b[p];
    if (c != ' ' || p == ts) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            return fail(out, p, S2H_E_REQUEST_LINE);
        return fail(out, p, S2H_E_TARGET);
    }
    te = p++;
    r = version_at(b, &p, end, lim, S2H_E_REQUEST_LINE_TOO_LONG, &version,
                   out);
    if (r)
        return r;
    NEED(p, lim, S2H_E_REQUEST_LINE_TOO_LONG);
    if (b[p] != '\r')
        return fail(out, p, b[p] == '\n' ? S2H_E_LINE_ENDING : S2H_E_VERSION);
    if (p + 1 >= end)
        return S2H_INCOMPLETE;
    if (b[p + 1] != '\n')
        return fail(out, p + 1, S2H_E_LINE_ENDING);
    if (version != 10 && version != 11)
        return fail(out, te + 1, S2H_E_VERSION_UNSUPPORTED);
    /* The target's form must fit the method (RFC 9112 3.2). */
    if (te - ts == 1 && b[ts] == '*') {
        if (!(ts - 1 - ms == 7 && memcmp(b + ms, "OPTIONS", 7) == 0))
            return fail(out, ts, S2H_E_TARGET_FORM);
    } else if (ts - 1 - ms == 7 && memcmp(b + ms, "CONNECT", 7) == 0) {
        size_t i;
        for (i = ts; i < te; i++)
            if (b[i] == '/' || b[i] == '?' || b[i] == '@' || b[i] == '*')
                return fail(out, i, S2H_E_TARGET_FORM);
        if (!memchr(b + ts, ':', te - ts))
            return fail(out, ts, S2H_E_TARGET_FORM);
    } else if (b[ts] != '/') {
        size_t i = ts;
        if (!((b[i] | 0x20) >= 'a' && (b[i] | 0x20) <= 'z'))
            return fail(out, ts, S2H_E_TARGET_FORM);
        while (i < te && (((b[i] | 0x20) >= 'a' && (b[i] | 0x20) <= 'z')
                          || (b[i] >= '0' && b[i] <= '9') || b[i] == '+'
                          || b[i] == '-' || b[i] == '.'))
            i++;
        if (i == te || b[i] != ':')
            return fail(out, i, S2H_E_TARGET_FORM);
    }
    p += 2;
    r = field_section(b, &p, end, max_head, max_fields, out);
    if (r)
        return r;
    out[S2H_END] = (int64_t)p;
    out[S2H_VERSION] = version;
    out[S2H_STATUS] = 0;
    r = framing(b, out, 1, version, 0, S2H_METHOD_OTHER);
    if (r)
        return r;
    memcpy(flat, b + ms, ts - 1 - ms);
    flat[ts - 1 - ms] = 0;
    memcpy(flat + (ts - ms), b + ts, te - ts);
    out[S2H_FLAT] = (int64_t)flatten_fields(b, out, (u8 *)flat,
                                            te - ms);
    return S2H_COMPLETE;
}

/* ------------------------------------------------------------- responses */

int s2h_parse_response(const s2h_parser *ps, const char *buf, size_t start,
                       size_t end, int method)
{
    const u8 *b = (const u8 *)buf;
    int64_t *out = ps->out;
    char *flat = ps->flat;
    size_t max_head = ps->max_head;
    int max_fields = ps->max_fields;
    size_t p = start, lim = start + ps->max_line + 1, rs, re, e;
    int version, status = 0, i, r;
    if (!tables_ready)
        s2h_init();
    r = version_at(b, &p, end, lim, S2H_E_STATUS_LINE_TOO_LONG, &version,
                   out);
    if (r)
        return r;
    NEED(p, lim, S2H_E_STATUS_LINE_TOO_LONG);
    if (b[p] != ' ')
        return fail(out, p, S2H_E_STATUS_LINE);
    p++;
    for (i = 0; i < 3; i++, p++) {
        NEED(p, lim, S2H_E_STATUS_LINE_TOO_LONG);
        if (!(b[p] >= '0' && b[p] <= '9'))
            return fail(out, p, S2H_E_STATUS_CODE);
        status = status * 10 + (b[p] - '0');
    }
    NEED(p, lim, S2H_E_STATUS_LINE_TOO_LONG);
    /* The reason phrase may be missing with its space (RFC 9112 4 wants
     * the space; senders that omit both are common enough to accept). */
    if (b[p] == ' ') {
        p++;
    } else if (b[p] != '\r') {
        return fail(out, p, b[p] == '\n' ? S2H_E_LINE_ENDING
                                         : S2H_E_STATUS_CODE);
    }
    rs = p;
    e = end < lim ? end : lim;
    while (p < e && (cls[b[p]] & C_FIELD))
        p++;
    NEED(p, lim, S2H_E_STATUS_LINE_TOO_LONG);
    if (b[p] != '\r')
        return fail(out, p, b[p] == '\n' ? S2H_E_LINE_ENDING
                                         : S2H_E_STATUS_LINE);
    re = p;
    if (p + 1 >= end)
        return S2H_INCOMPLETE;
    if (b[p + 1] != '\n')
        return fail(out, p + 1, S2H_E_LINE_ENDING);
    if (version != 10 && version != 11)
        return fail(out, start, S2H_E_VERSION_UNSUPPORTED);
    if (status < 100 || status > 599)
        return fail(out, start + 9, S2H_E_STATUS_CODE);
    p += 2;
    r = field_section(b, &p, end, max_head, max_fields, out);
    if (r)
        return r;
    out[S2H_END] = (int64_t)p;
    out[S2H_VERSION] = version;
    out[S2H_STATUS] = status;
    r = framing(b, out, 0, version, status, method);
    if (r)
        return r;
    memcpy(flat, b + rs, re - rs);
    out[S2H_FLAT] = (int64_t)flatten_fields(b, out, (u8 *)flat, re - rs);
    return S2H_COMPLETE;
}

/* ---------------------------------------------------------- chunked body */

/* The decoder's state between calls.  A unit (a chunk-size line, the CRLF
 * after a chunk's data, a trailer line) is consumed only whole; chunk data
 * is handed out as it arrives. */
typedef struct {
    int state;              /* S2H_CS_* */
    int error;              /* the error code, once failed */
    int64_t remaining;      /* data bytes left in the current chunk */
    int64_t trailer_bytes;  /* bytes of the trailer section so far */
    int ntrailers;
    int64_t max_line;       /* a chunk-size line, extensions included */
    int64_t max_trailer_bytes;
    int max_trailers;
} s2h_chunked;

#define S2H_CS_SIZE 0
#define S2H_CS_DATA 1
#define S2H_CS_DATA_END 2
#define S2H_CS_TRAILER 3
#define S2H_CS_DONE 4
#define S2H_CS_FAILED 5

/* out[] of a decoder step */
#define S2H_C_POS 0      /* offset after what was consumed */
#define S2H_C_START 1    /* data, or a trailer's name */
#define S2H_C_STOP 2
#define S2H_C_VALUE 3    /* a trailer's value */
#define S2H_C_VALUE_END 4
#define S2H_C_ERRPOS S2H_ERRPOS

/* chunk = chunk-size [ chunk-ext ] CRLF;
 * chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) */
static int size_line(const s2h_chunked *st, const u8 *b, size_t *pp,
                     size_t end, int64_t *size, int64_t *out)
{
    size_t p = *pp, lim = p + (size_t)st->max_line + 1, s = p;
    int64_t v = 0;
    u8 c;
    for (;;) {
        NEED(p, lim, S2H_E_CHUNK_LINE_TOO_LONG);
        c = b[p];
        if (!(cls[c] & C_HEX))
            break;
        if (v > (INT64_MAX >> 4))
            return fail(out, p, S2H_E_CHUNK_SIZE_OVERFLOW);
        v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        p++;
    }
    if (p == s || !(c == '\r' || c == ';' || IS_WS(c)))
        return fail(out, p, S2H_E_CHUNK_SIZE);
    for (;;) {
        size_t t;
        NEED(p, lim, S2H_E_CHUNK_LINE_TOO_LONG);
        c = b[p];
        if (IS_WS(c)) {
            do {
                p++;
                NEED(p, lim, S2H_E_CHUNK_LINE_TOO_LONG);
            } while (IS_WS(b[p]));
            if (b[p] != ';')
                return fail(out, p, S2H_E_CHUNK_EXT);
            c = ';';
        }
        if (c == '\r')
            break;
        if (c != ';')
            return fail(out, p, c == '\n' ? S2H_E_LINE_ENDING
                                          : S2H_E_CHUNK_EXT);
        p++;
        NEED(p, lim, S2H_E_CHUNK_LINE_TOO_LONG);
        while (IS_WS(b[p])) {
            p++;
            NEED(p, lim, S2H_E_CHUNK_LINE_TOO_LONG);
        }
        t = p;
        while (cls[b[p]] & C_TCHAR) {
            p++;
            NEED(p, lim, S2H_E_CHUNK_LINE_TOO_LONG);
        }
        if (p == t)
            return fail(out, p, S2H_E_CHUNK_EXT);
        t = p;
        while (IS_WS(b[p])) {
            p++;
            NEED(p, lim, S2H_E_CHUNK_LINE_TOO_LONG);
        }
        if (b[p] != '=') {
            if (p != t && b[p] != ';')
                return fail(out, p, S2H_E_CHUNK_EXT);
            continue;
        }
        p++;
        NEED(p, lim, S2H_E_CHUNK_LINE_TOO_LONG);
        while (IS_WS(b[p])) {
            p++;
            NEED(p, lim, S2H_E_CHUNK_LINE_TOO_LONG);
        }
        if (b[p] == '"') {
            for (;;) {
                p++;
                NEED(p, lim, S2H_E_CHUNK_LINE_TOO_LONG);
                c = b[p];
                if (c == '"')
                    break;
                if (c == '\\') {
                    p++;
                    NEED(p, lim, S2H_E_CHUNK_LINE_TOO_LONG);
                    c = b[p];
                    if (!(cls[c] & C_FIELD))
                        return fail(out, p, c == '\r' || c == '\n'
                                    ? S2H_E_LINE_ENDING : S2H_E_CHUNK_EXT);
                } else if (!(cls[c] & C_QDTEXT)) {
                    return fail(out, p, c == '\r' || c == '\n'
                                ? S2H_E_LINE_ENDING : S2H_E_CHUNK_EXT);
                }
            }
            p++;
        } else {
            t = p;
            while (cls[b[p]] & C_TCHAR) {
                p++;
                NEED(p, lim, S2H_E_CHUNK_LINE_TOO_LONG);
            }
            if (p == t)
                return fail(out, p, S2H_E_CHUNK_EXT);
        }
    }
    /* b[p] is CR */
    if (p + 1 >= end)
        return S2H_INCOMPLETE;
    if (b[p + 1] != '\n')
        return fail(out, p + 1, S2H_E_LINE_ENDING);
    *pp = p + 2;
    *size = v;
    return S2H_COMPLETE;
}

void s2h_chunked_init(s2h_chunked *st, int64_t max_line,
                      int64_t max_trailer_bytes, int max_trailers)
{
    memset(st, 0, sizeof *st);
    st->max_line = max_line;
    st->max_trailer_bytes = max_trailer_bytes;
    st->max_trailers = max_trailers;
    if (!tables_ready)
        s2h_init();
}

/* One step over buf[p:end]: returns S2H_CHUNK_DATA (data at out[START],
 * out[STOP]), S2H_CHUNK_TRAILER (a trailer field: name, name end, value,
 * value end at out[START..VALUE_END]), S2H_CHUNK_DONE (the body ended),
 * S2H_INCOMPLETE (nothing more in this buffer) or an error; out[POS] is
 * where the next step starts. */
int s2h_chunked_step(s2h_chunked *st, const char *buf, size_t p, size_t end,
                     int64_t *out)
{
    const u8 *b = (const u8 *)buf;
    int r;
    out[S2H_C_POS] = (int64_t)p;
    if (st->state == S2H_CS_FAILED)
        return st->error;
    for (;;) {
        switch (st->state) {
        case S2H_CS_SIZE: {
            int64_t size;
            r = size_line(st, b, &p, end, &size, out);
            if (r)
                goto stop;
            out[S2H_C_POS] = (int64_t)p;
            if (size) {
                st->remaining = size;
                st->state = S2H_CS_DATA;
            } else {
                st->state = S2H_CS_TRAILER;
            }
            break;
        }
        case S2H_CS_DATA: {
            size_t n;
            if (p >= end)
                return S2H_INCOMPLETE;
            n = end - p;
            if ((int64_t)n > st->remaining)
                n = (size_t)st->remaining;
            st->remaining -= (int64_t)n;
            if (!st->remaining)
                st->state = S2H_CS_DATA_END;
            out[S2H_C_START] = (int64_t)p;
            out[S2H_C_STOP] = (int64_t)(p + n);
            out[S2H_C_POS] = (int64_t)(p + n);
            return S2H_CHUNK_DATA;
        }
        case S2H_CS_DATA_END:
            if (p >= end)
                return S2H_INCOMPLETE;
            if (b[p] != '\r') {
                r = fail(out, p, S2H_E_CHUNK_DATA_CRLF);
                goto stop;
            }
            if (p + 1 >= end)
                return S2H_INCOMPLETE;
            if (b[p + 1] != '\n') {
                r = fail(out, p + 1, S2H_E_CHUNK_DATA_CRLF);
                goto stop;
            }
            p += 2;
            out[S2H_C_POS] = (int64_t)p;
            st->state = S2H_CS_SIZE;
            break;
        case S2H_CS_TRAILER: {
            size_t lim = p + (size_t)(st->max_trailer_bytes
                                      - st->trailer_bytes), q = p;
            u8 c;
            if (p >= end)
                return S2H_INCOMPLETE;
            if (p >= lim) {
                r = fail(out, p, S2H_E_TRAILERS_TOO_LARGE);
                goto stop;
            }
            c = b[p];
            if (c == '\r') {
                if (p + 1 >= end)
                    return S2H_INCOMPLETE;
                if (p + 1 >= lim) {
                    r = fail(out, p + 1, S2H_E_TRAILERS_TOO_LARGE);
                    goto stop;
                }
                if (b[p + 1] != '\n') {
                    r = fail(out, p + 1, S2H_E_LINE_ENDING);
                    goto stop;
                }
                st->state = S2H_CS_DONE;
                out[S2H_C_POS] = (int64_t)(p + 2);
                return S2H_CHUNK_DONE;
            }
            if (c == '\n')
                r = fail(out, p, S2H_E_LINE_ENDING);
            else if (IS_WS(c))
                r = fail(out, p, S2H_E_OBS_FOLD);
            else if (st->ntrailers >= st->max_trailers)
                r = fail(out, p, S2H_E_TOO_MANY_TRAILERS);
            else
                r = field_line(b, &q, end, lim, S2H_E_TRAILERS_TOO_LARGE,
                               out, out + S2H_C_START);
            if (r)
                goto stop;
            st->trailer_bytes += (int64_t)(q - p);
            st->ntrailers++;
            out[S2H_C_POS] = (int64_t)q;
            return S2H_CHUNK_TRAILER;
        }
        case S2H_CS_DONE:
            return S2H_CHUNK_DONE;
        }
    }
stop:
    if (r > 0) {
        st->state = S2H_CS_FAILED;
        st->error = r;
    }
    return r;
}
