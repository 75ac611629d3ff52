/* hubkv-generate: tokenize a prompt with the model's own tokenizer and print
 * the model's greedy continuation (CPU forward). The smoke test of the engine
 * that the README's main command runs until the full pipeline lands. */
#include "hubkv_cli.h"
#include "hubkv_model.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: hubkv-generate --model PATH --prompt TEXT [options]\n"
            "  --model PATH       HF checkpoint directory or .gguf file\n"
            "  --tokenizer PATH   tokenizer.json or .gguf (default: the model's)\n"
            "  --prompt TEXT      prompt text (UTF-8)\n"
            "  --chat             wrap the prompt in the ChatML template (<|im_start|>...)\n"
            "  --max-new N        tokens to generate (default 64)\n"
            "  --help             this text\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ChatML, as SmolLM2-Instruct and Qwen2 instruct models expect. */
static char *chatml(const char *prompt) {
    static const char *fmt = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
                             "trained by Hugging Face<|im_end|>\n<|im_start|>user\n%s<|im_end|>\n"
                             "<|im_start|>assistant\n";
    size_t n = strlen(fmt) + strlen(prompt) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, fmt, prompt);
    return s;
}

int main(int argc, char **argv) {
    hkc_tool("hubkv-generate");
    const char *model_path = NULL, *tok_path = NULL, *prompt = NULL;
    int chat = 0, max_new = 64;
    static struct option opts[] = {{"model", required_argument, 0, 'm'},
                                   {"tokenizer", required_argument, 0, 't'},
                                   {"prompt", required_argument, 0, 'p'},
                                   {"chat", no_argument, 0, 'c'},
                                   {"max-new", required_argument, 0, 'n'},
                                   {"help", no_argument, 0, 'h'},
                                   {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'm': model_path = optarg; break;
        case 't': tok_path = optarg; break;
        case 'p': prompt = optarg; break;
        case 'c': chat = 1; break;
        case 'n': max_new = (int)hkc_long("--max-new", optarg, 1, 100000); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model_path || !prompt) {
        fprintf(stderr, "hubkv-generate: --model and --prompt are required\n");
        usage(stderr);
        return 2;
    }
    if (!tok_path) tok_path = model_path;

    // Load: tokenizer first (cheap), then the weights.
    hkm_err err = {{0}};
    hkm_tokenizer *tok = NULL;
    hkm_model *model = NULL;
    char *text = NULL, *reply = NULL;
    int32_t *ids = NULL, *out = NULL;
    const char *what = NULL; // names the failing step; NULL on success
    hkm_status st = HKM_OK;
    double t0 = now_s();
    if ((st = hkm_tokenizer_load(tok_path, &tok, &err))) { what = tok_path; goto done; }
    if ((st = hkm_model_load(model_path, &model, &err))) { what = model_path; goto done; }
    const hkm_config *cfg = hkm_model_config(model);
    printf("model: %s, %d layers, d_model %d, %d heads / %d KV heads, vocab %d (loaded in %.1f s)\n",
           hkm_arch_name(cfg->arch), cfg->n_layers, cfg->d_model, cfg->n_heads, cfg->n_kv_heads,
           cfg->vocab_size, now_s() - t0);

    // Tokenize.
    text = chat ? chatml(prompt) : strdup(prompt);
    if (!text) { st = HKM_ERR_NOMEM; what = "prompt"; goto done; }
    size_t n_ids = 0;
    if ((st = hkm_tokenizer_encode(tok, text, strlen(text), 1, &ids, &n_ids, &err))) { what = "encode"; goto done; }
    printf("prompt: %zu tokens\n", n_ids);

    // Generate greedily; stop at <|im_end|> in chat mode, else at EOS.
    int32_t eos = chat ? hkm_tokenizer_token_id(tok, "<|im_end|>") : -1;
    if (eos < 0) eos = hkm_tokenizer_eos(tok);
    out = malloc(sizeof(int32_t) * (size_t)max_new);
    if (!out) { st = HKM_ERR_NOMEM; what = "generate"; goto done; }
    int n_out = 0;
    t0 = now_s();
    if ((st = hkm_generate_greedy(model, ids, (int)n_ids, max_new, eos, out, &n_out, &err))) { what = "generate"; goto done; }
    double dt = now_s() - t0;

    size_t reply_len = 0;
    if ((st = hkm_tokenizer_decode(tok, out, (size_t)n_out, 1, &reply, &reply_len, &err))) { what = "decode"; goto done; }
    printf("continuation (%d tokens, %.1f tokens/s incl. prefill):\n%s\n", n_out,
           n_out / (dt > 0 ? dt : 1e-9), reply);

done:
    if (what) fprintf(stderr, "hubkv-generate: %s: %s: %s\n", what, hkm_status_str(st), err.msg);
    free(reply);
    free(out);
    free(ids);
    free(text);
    hkm_model_free(model);
    hkm_tokenizer_free(tok);
    return what ? 1 : 0;
}
