/* CPU references of the decode-time operations against naive versions and
 * properties: append (content, all-or-nothing when full), H2O (sinks and
 * recent never evicted, the evicted row has the least accumulated attention),
 * the sink-attention gate (double-precision re-derivation), and the
 * diversity selector (lambda = 0 equals Top-K; duplicates are avoided). */
#include "hubkv.h"
#include "test_util.h"

#include <math.h>
#include <string.h>

static unsigned rng = 4242;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / 16777216.0f;
}
static uint16_t bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

static void test_append(void) {
    enum { H = 3, D = 4 };
    int32_t off[H + 1] = {0, 5, 7, 12}, len[H] = {2, 1, 5}, pos[12];
    uint16_t k[12 * D] = {0}, v[12 * D] = {0}, nk[H * 2 * D], nv[H * 2 * D];
    for (int i = 0; i < 12; i++) pos[i] = -1;
    for (int i = 0; i < H * 2 * D; i++) nk[i] = (uint16_t)(100 + i), nv[i] = (uint16_t)(500 + i);
    char err[256] = "";
    /* Head 2 is full: nothing may change. */
    CHECK(hubkv_append_cpu(k, v, pos, off, len, H, D, nk, nv, 1, 10, err, sizeof err) == HUBKV_ERR_RANGE &&
              strstr(err, "head 2"),
          "full head: %s", err);
    CHECK(len[0] == 2 && len[1] == 1 && pos[2] == -1, "failed append left the cache unchanged");
    len[2] = 3;
    CHECK(hubkv_append_cpu(k, v, pos, off, len, H, D, nk, nv, 1, 10, err, sizeof err) == HUBKV_OK, "%s", err);
    CHECK(len[0] == 3 && len[1] == 2 && len[2] == 4, "lens %d %d %d", len[0], len[1], len[2]);
    CHECK(pos[2] == 10 && pos[6] == 10 && pos[10] == 10, "positions of appended rows");
    CHECK(k[2 * D] == 100 && k[6 * D] == 100 + D && v[10 * D + 3] == 500 + 2 * D + 3, "appended rows hold the new K/V");
    CHECK(hubkv_append_cpu(k, v, pos, off, len, H, D, nk, nv, 2, 11, err, sizeof err) == HUBKV_ERR_RANGE, "head 1 full");
}

static void test_h2o(void) {
    enum { H = 2, CAP = 12, SINK = 2, RECENT = 3 };
    int32_t off[H + 1] = {0, CAP, 2 * CAP}, len[H] = {CAP - 2, CAP}, pos[2 * CAP], slot[H];
    float acc[2 * CAP] = {0}, attn[2 * CAP];
    for (int h = 0; h < H; h++)
        for (int r = 0; r < len[h]; r++) pos[off[h] + r] = r;
    char err[256] = "";
    int bad = 0;
    for (int step = 0; step < 40; step++) {
        int32_t new_pos = CAP + step;
        float before[2 * CAP];
        int32_t pos_before[2 * CAP], len_before[H] = {len[0], len[1]};
        for (int i = 0; i < 2 * CAP; i++) attn[i] = frand();
        memcpy(pos_before, pos, sizeof pos);
        for (int i = 0; i < 2 * CAP; i++) before[i] = acc[i] + attn[i];
        CHECK(hubkv_h2o_step_cpu(acc, pos, off, len, H, attn, new_pos, SINK, RECENT, slot, err, sizeof err) == HUBKV_OK,
              "%s", err);
        for (int h = 0; h < H; h++) {
            int s = slot[h] - off[h];
            if (len_before[h] < CAP) {
                bad += s != len_before[h] || len[h] != len_before[h] + 1;
                continue;
            }
            int p = pos_before[off[h] + s];
            bad += p < SINK || p >= new_pos - RECENT; /* sinks and recent are never evicted */
            for (int r = 0; r < CAP; r++) {
                int q = pos_before[off[h] + r];
                if (q >= SINK && q < new_pos - RECENT && before[off[h] + r] < before[off[h] + s]) bad++;
            }
            bad += pos[slot[h]] != new_pos || acc[slot[h]] != 0.0f;
        }
    }
    CHECK(bad == 0, "h2o: %d violations (slot choice, protection or bookkeeping)", bad);
    /* All rows protected: a clear error. */
    int32_t off1[2] = {0, 3}, len1[1] = {3}, pos1[3] = {0, 1, 2}, s1;
    float acc1[3] = {0}, attn1[3] = {1, 1, 1};
    CHECK(hubkv_h2o_step_cpu(acc1, pos1, off1, len1, 1, attn1, 3, 2, 4, &s1, err, sizeof err) == HUBKV_ERR_RANGE &&
              strstr(err, "head 0"),
          "all protected: %s", err);
}

/* Gate in double from the definition in hubkv.h. */
static double gate_naive(const hubkv_gate_weights *w, const float *x, int h) {
    int G = w->n_group, r = w->rank, D = w->d_model;
    double k[64], q[64], sum = 0;
    double ss = 0;
    for (int j = 0; j < r; j++) {
        k[j] = 0;
        for (int c = 0; c < D; c++) k[j] += (double)w->wk[(size_t)(h * r + j) * D + c] * x[c];
        ss += k[j] * k[j];
    }
    for (int j = 0; j < r; j++) k[j] = k[j] / sqrt(ss / r + w->eps) * w->k_norm[j];
    for (int g = 0; g < G; g++) {
        ss = 0;
        for (int j = 0; j < r; j++) {
            size_t row = (size_t)((h * G + g) * r + j);
            q[j] = w->bq[row];
            for (int c = 0; c < D; c++) q[j] += (double)w->wq[row * D + c] * x[c];
            ss += q[j] * q[j];
        }
        for (int j = 0; j < r; j++) q[j] = q[j] / sqrt(ss / r + w->eps) * w->q_norm[j];
        double l = w->b[h * G + g], den = 1;
        for (int j = 0; j < r; j++) l += k[j] * q[j] / sqrt(r);
        for (int s = 0; s < w->n_sink; s++) {
            double m = 0;
            for (int j = 0; j < r; j++) m += w->k_base[(size_t)(h * w->n_sink + s) * r + j] * q[j] / sqrt(r);
            den += exp(m - l);
        }
        sum += 1 / den;
    }
    return sum / G;
}

static void test_gate(void) {
    enum { D = 40, H = 3, G = 2, R = 8, S = 4, N = 7 };
    static float wq[H * G * R * D], bq[H * G * R], wk[H * R * D], qn[R], kn[R], kb[H * S * R], b[H * G], x[N * D],
        out[H * N];
    for (int i = 0; i < H * G * R * D; i++) wq[i] = frand() - 0.5f;
    for (int i = 0; i < H * R * D; i++) wk[i] = frand() - 0.5f;
    for (int i = 0; i < H * G * R; i++) bq[i] = 0.1f * (frand() - 0.5f);
    for (int i = 0; i < R; i++) qn[i] = 0.5f + frand(), kn[i] = 0.5f + frand();
    for (int i = 0; i < H * S * R; i++) kb[i] = 2 * (frand() - 0.5f);
    for (int i = 0; i < H * G; i++) b[i] = frand() - 0.5f;
    for (int i = 0; i < N * D; i++) x[i] = 2 * (frand() - 0.5f);
    hubkv_gate_weights w = {D, H, G, R, S, 1e-6f, wq, bq, wk, qn, kn, kb, b};
    char err[256] = "";
    CHECK(hubkv_gate_forward_cpu(&w, x, N, out, err, sizeof err) == HUBKV_OK, "%s", err);
    double worst = 0;
    for (int h = 0; h < H; h++)
        for (int t = 0; t < N; t++) {
            double want = gate_naive(&w, x + t * D, h), got = out[h * N + t];
            if (fabs(got - want) > worst) worst = fabs(got - want);
            CHECK(got > 0 && got < 1, "gate output %g outside (0, 1)", got);
        }
    CHECK(worst < 1e-5, "gate vs double re-derivation: max abs diff %g", worst);
    w.rank = 100;
    CHECK(hubkv_gate_forward_cpu(&w, x, N, out, err, sizeof err) == HUBKV_ERR_INVALID_ARG && strstr(err, "rank 100"),
          "bad rank: %s", err);
}

static void test_diverse(void) {
    enum { H = 3, N = 200, D = 16, SINK = 2, RECENT = 5 };
    static float s[H * N];
    static uint16_t v[H * N * D];
    int32_t off[H + 1] = {0};
    static int32_t a[H * N], b[H * N];
    for (int i = 0; i < H * N; i++) s[i] = frand();
    for (int i = 0; i < H * N * D; i++) v[i] = bf16(frand() - 0.5f);
    for (int h = 0; h < H; h++) off[h + 1] = off[h] + SINK + RECENT + 20 * (h + 1);
    char err[256] = "";
    CHECK(hubkv_diverse_cpu(s, v, H, N, D, off, 0.0f, SINK, RECENT, a, err, sizeof err) == HUBKV_OK, "%s", err);
    CHECK(hubkv_topk_cpu(s, H, N, off, SINK, RECENT, b, err, sizeof err) == HUBKV_OK, "%s", err);
    CHECK(!memcmp(a, b, sizeof(int32_t) * off[H]), "lambda = 0 must equal Top-K");
    /* Head 0: tokens 10..19 copy token 9's V and score near the top (Top-K
     * keeps them all); with lambda = 0.5 a copy of a kept token loses 0.5
     * (cos = 1), more than random tokens lose, so one copy is kept. */
    for (int i = 9; i < 20; i++) {
        s[i] = 0.9f + 0.005f * i;
        memcpy(v + (size_t)i * D, v + (size_t)9 * D, D * sizeof *v);
    }
    CHECK(hubkv_diverse_cpu(s, v, H, N, D, off, 0.5f, SINK, RECENT, a, err, sizeof err) == HUBKV_OK, "%s", err);
    int dup = 0, sorted = 1;
    for (int j = off[0]; j < off[1]; j++) {
        dup += a[j] >= 9 && a[j] < 20;
        if (j > off[0]) sorted &= a[j] > a[j - 1];
    }
    CHECK(dup == 1 && sorted, "lambda 0.5 keeps %d of 11 duplicates (expected 1), ascending %d", dup, sorted);
    CHECK(hubkv_diverse_cpu(s, v, H, N, D, off, -1.0f, SINK, RECENT, a, err, sizeof err) == HUBKV_ERR_INVALID_ARG,
          "negative lambda");
}

int main(void) {
    test_append();
    test_h2o();
    test_gate();
    test_diverse();
    return test_summary("test_runtime_decode");
}
