"""Measure batch-1 prefill of long prompts on a CUDA GPU (the Azure trace reaches 14k tokens;
the shipped H200 profile stops at 2,048). Random, architecture-exact weights; HF transformers,
bf16, eager, SDPA: the same method as shared/tools/profile_models.py. Needs torch and
transformers with a CUDA GPU. Output: JSON on stdout.

    python3 bench/profile_long_prefill.py > edgeagents/data/h200-prefill-long.json
"""

import json
import statistics
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

LENGTHS = (512, 2048, 4096, 8192, 16384)
"""512 and 2,048 repeat the shipped profile's points, to check this machine against it."""
MODELS = {
    "llama-3.1-8b": (LlamaConfig, LlamaForCausalLM, dict(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768,
        rope_theta=500000.0)),
    "qwen2-7b": (Qwen2Config, Qwen2ForCausalLM, dict(
        vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
        num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768)),
}  # fmt: skip


def timed(fn, reps: int = 5, warm: int = 2) -> dict:
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    xs = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        xs.append(time.perf_counter() - t)
    return {"median_s": statistics.median(xs), "min_s": min(xs), "max_s": max(xs), "n": reps}


def main() -> None:
    out = {
        "env": {
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0),
            "dtype": "torch.bfloat16",
            "weights": "random, architecture-faithful",
            "mode": "eager, inference_mode, sdpa attention, batch 1, logits of every token "
            "(as the shipped profile measured them)",
            "tool": "bench/profile_long_prefill.py",
        },
        "models": {},
    }
    for name, (cfg_cls, model_cls, cfg) in MODELS.items():
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = model_cls(cfg_cls(**cfg)).to(torch.bfloat16).eval()
        rows = []
        with torch.inference_mode():
            for n in LENGTHS:
                ids = torch.randint(0, cfg["vocab_size"], (1, n), device="cuda")
                t = timed(lambda ids=ids, m=model: m(input_ids=ids, use_cache=False))
                rows.append({"batch": 1, "input_tokens": n, **t})
                print(f"[{name}] {n} tokens: {t['median_s'] * 1000:.1f} ms", file=sys.stderr)
        out["models"][name] = {"prefill": rows}
        del model
        torch.cuda.empty_cache()
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
