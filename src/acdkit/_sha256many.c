/* SHA-256 of many values per call, through OpenSSL's EVP interface.
 *
 * hashlib pays about half a microsecond of interpreter and OpenSSL set-up per value, which
 * is most of the cost of a 65-byte Merkle node or a 250-byte record.  These two functions
 * hash a whole batch with one digest context and one fetched algorithm; acdkit._batchsha
 * loads them with ctypes (no Python C API here), and falls back to hashlib without them.
 *
 * Each returns 1 on success and 0 if OpenSSL reports a failure; the caller then raises.
 */
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/opensslv.h>

#if !defined(OPENSSL_VERSION_MAJOR) || OPENSSL_VERSION_MAJOR < 3
#error "OpenSSL 3 or later is needed (EVP_MD_fetch, EVP_DigestInit_ex2)"
#endif

#if defined(__GNUC__)
#define EXPORT __attribute__((visibility("default")))
#else
#define EXPORT
#endif

/* out[32 i .. 32 i + 32) = SHA-256(data[offsets[i] .. offsets[i + 1])) for i in [0, n) */
EXPORT int acdkit_sha256_values(const uint8_t *data, const int64_t *offsets, int64_t n,
                                uint8_t *out)
{
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = md != NULL && ctx != NULL;
    for (int64_t i = 0; ok && i < n; i++) {
        int64_t size = offsets[i + 1] - offsets[i];
        ok = size >= 0 && EVP_DigestInit_ex2(ctx, md, NULL)
             && EVP_DigestUpdate(ctx, data + offsets[i], (size_t)size)
             && EVP_DigestFinal_ex(ctx, out + 32 * i, NULL);
    }
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
    return ok;
}

/* One Merkle level up: out[32 i ..] = SHA-256(0x01 || level[64 i .. 64 i + 64)), i < pairs */
EXPORT int acdkit_sha256_nodes(const uint8_t *level, int64_t pairs, uint8_t *out)
{
    static const uint8_t node_prefix = 0x01;
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = md != NULL && ctx != NULL;
    for (int64_t i = 0; ok && i < pairs; i++) {
        ok = EVP_DigestInit_ex2(ctx, md, NULL) && EVP_DigestUpdate(ctx, &node_prefix, 1)
             && EVP_DigestUpdate(ctx, level + 64 * i, 64)
             && EVP_DigestFinal_ex(ctx, out + 32 * i, NULL);
    }
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
    return ok;
}
