/* SVG figures written directly (no plotting dependency): the budget heat map
 * (layer x head) and loss curves of chosen heads. */
#ifndef HKS_SVG_H
#define HKS_SVG_H

#include "hkm_internal.h"

#include <stdint.h>

/* vals: (L, H) in [0, 1] (values outside are clamped for the colour). */
hkm_status hks_svg_heatmap(const char *path, int32_t L, int32_t H, const float *vals, const char *title, hkm_err *err);

/* curves: (n, G) over grid (G); labels: (n) legend entries. */
hkm_status hks_svg_curves(const char *path, const float *grid, int32_t G, int32_t n, const float *curves,
                          const char *const *labels, const char *title, hkm_err *err);

#endif
