/* SVG writer for hubkv-inspect: a layer x head heat map with a colour bar,
 * and a line plot of loss curves with axes, ticks and a legend. */
#include "svg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Viridis at 5 stops, linearly blended. */
static void colour(double t, char *buf, size_t cap) {
    static const double st[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double x = t * 4;
    int i = x >= 4 ? 3 : (int)x;
    double f = x - i;
    snprintf(buf, cap, "#%02x%02x%02x", (int)lround(st[i][0] + f * (st[i + 1][0] - st[i][0])),
             (int)lround(st[i][1] + f * (st[i + 1][1] - st[i][1])), (int)lround(st[i][2] + f * (st[i + 1][2] - st[i][2])));
}

/* ---------------------------------------------------------------- heat map */

hkm_status hks_svg_heatmap(const char *path, int32_t L, int32_t H, const float *vals, const char *title, hkm_err *err) {
    char tmp[4200], c[16];
    FILE *f;
    HKM_TRY(hkm_tmp_open(path, "w", tmp, sizeof tmp, &f, err));
    double cw = H <= 16 ? fmax(36, 240.0 / H) : fmax(6, 576.0 / H), ch = L <= 40 ? fmax(14, 200.0 / L) : fmax(4, 560.0 / L);
    double x0 = 60, y0 = 40, w = cw * H, h = ch * L, W = x0 + w + 110, Ht = y0 + h + 50;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"11\">\n", W, Ht);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"20\" font-size=\"14\">%s</text>\n", x0, title);
    for (int32_t l = 0; l < L; l++)
        for (int32_t k = 0; k < H; k++) {
            colour(vals[l * H + k], c, sizeof c);
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>layer %d head %d: %.4f</title></rect>\n",
                    x0 + k * cw, y0 + l * ch, cw, ch, c, l, k, vals[l * H + k]);
        }
    int lstep = L <= 40 ? 1 : (L + 19) / 20, hstep = H <= 16 ? 1 : (H + 15) / 16;
    for (int32_t l = 0; l < L; l += lstep)
        fprintf(f, "<text x=\"%.0f\" y=\"%.2f\" text-anchor=\"end\">%d</text>\n", x0 - 4, y0 + (l + 0.75) * ch, l);
    for (int32_t k = 0; k < H; k += hstep)
        fprintf(f, "<text x=\"%.2f\" y=\"%.0f\" text-anchor=\"middle\">%d</text>\n", x0 + (k + 0.5) * cw, y0 + h + 14, k);
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">KV head</text>\n", x0 + w / 2, y0 + h + 32);
    fprintf(f, "<text x=\"14\" y=\"%.0f\" transform=\"rotate(-90 14 %.0f)\" text-anchor=\"middle\">layer</text>\n", y0 + h / 2, y0 + h / 2);
    for (int i = 0; i < 50; i++) { // colour bar 0 (bottom) .. 1 (top)
        colour(1 - i / 49.0, c, sizeof c);
        fprintf(f, "<rect x=\"%.0f\" y=\"%.2f\" width=\"16\" height=\"%.2f\" fill=\"%s\"/>\n", x0 + w + 20, y0 + i * h / 50, h / 50 + 0.5, c);
    }
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">1</text><text x=\"%.0f\" y=\"%.0f\">0</text>\n", x0 + w + 40, y0 + 9, x0 + w + 40, y0 + h);
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">keep</text>\n</svg>\n", x0 + w + 40, y0 + h / 2);
    return hkm_tmp_commit(f, tmp, path, err); /* fsync, rename, fsync dir */
}

/* ---------------------------------------------------------------- curves */

hkm_status hks_svg_curves(const char *path, const float *grid, int32_t G, int32_t n, const float *curves,
                          const char *const *labels, const char *title, hkm_err *err) {
    static const char *pal[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
    char tmp[4200];
    double ymax = 0;
    for (int64_t i = 0; i < (int64_t)n * G; i++) ymax = fmax(ymax, curves[i]);
    if (!(ymax > 0)) ymax = 1;
    FILE *f;
    HKM_TRY(hkm_tmp_open(path, "w", tmp, sizeof tmp, &f, err));
    double x0 = 60, y0 = 40, w = 480, h = 300;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"11\">\n", x0 + w + 170, y0 + h + 50);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%.0f\" y=\"20\" font-size=\"14\">%s</text>\n", x0, title);
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"black\"/>\n", x0, y0, w, h);
    for (int i = 0; i <= 5; i++) {
        double t = i / 5.0;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ddd\"/>", x0 + t * w, y0, x0 + t * w, y0 + h);
        fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.1f</text>\n", x0 + t * w, y0 + h + 14, t);
        fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", x0 - 4, y0 + h - t * h + 4, t * ymax);
    }
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">keep fraction</text>\n", x0 + w / 2, y0 + h + 32);
    fprintf(f, "<text x=\"14\" y=\"%.0f\" transform=\"rotate(-90 14 %.0f)\" text-anchor=\"middle\">loss</text>\n", y0 + h / 2, y0 + h / 2);
    for (int32_t c = 0; c < n; c++) {
        const char *col = pal[c % 8];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", col);
        for (int32_t g = 0; g < G; g++)
            fprintf(f, "%.2f,%.2f ", x0 + grid[g] * w, y0 + h - curves[(int64_t)c * G + g] / ymax * h);
        fprintf(f, "\"/>\n<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"2\"/>", x0 + w + 12,
                y0 + 10 + 16 * c, x0 + w + 32, y0 + 10 + 16 * c, col);
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">%s</text>\n", x0 + w + 38, y0 + 14 + 16 * c, labels[c]);
    }
    fprintf(f, "</svg>\n");
    return hkm_tmp_commit(f, tmp, path, err); /* fsync, rename, fsync dir */
}
