"""The `vlm` backend: vision-language chat with transformers' LLaVA (CLIP vision tower + Llama),
real weights from a local path or a tiny synthetic configuration."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from serving.engines.base import (
    SYN_VOCAB,
    EngineError,
    device_dtype,
    offline,
    synthetic_ids,
    synthetic_text,
    torch_bytes,
)

if TYPE_CHECKING:
    from serving.config import ModelServerConfig


class LlavaEngine:
    """Vision-language chat with LLaVA: a CLIP vision tower projected into a Llama decoder."""

    backend: ClassVar[str] = "vlm"
    _IMAGE_PX = 32
    _PATCH_PX = 8
    _IMAGE_TOKEN = 4

    def __init__(self, config: ModelServerConfig) -> None:
        self.config = config
        self.synthetic_weights = config.weights_path is None
        self.weights = config.weights_path or "synthetic:llava-tiny-config"
        self._model: Any = None
        self._processor: Any = None

    def load(self) -> None:
        offline()
        import torch
        from transformers import (
            AutoProcessor,
            CLIPVisionConfig,
            LlamaConfig,
            LlavaConfig,
            LlavaForConditionalGeneration,
        )

        if self.config.weights_path:
            path = self.config.weights_path
            self._processor = AutoProcessor.from_pretrained(path, local_files_only=True)
            device, dtype = device_dtype(self.config)
            self._model = (
                LlavaForConditionalGeneration.from_pretrained(
                    path, local_files_only=True, dtype=dtype
                )
                .to(device)
                .eval()
            )
            return
        torch.manual_seed(self.config.seed)
        cfg = LlavaConfig(
            vision_config=CLIPVisionConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                image_size=self._IMAGE_PX,
                patch_size=self._PATCH_PX,
                projection_dim=32,
            ),
            text_config=LlamaConfig(
                vocab_size=SYN_VOCAB,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=256,
                pad_token_id=0,
                bos_token_id=1,
                eos_token_id=2,
            ),
            image_token_index=self._IMAGE_TOKEN,
            vision_feature_select_strategy="default",
            vision_feature_layer=-1,
        )
        self._model = LlavaForConditionalGeneration(cfg).eval()

    def _pixels(self, image_png: bytes) -> Any:
        import torch
        from PIL import Image, UnidentifiedImageError

        try:
            img = Image.open(io.BytesIO(image_png)).convert("RGB")
        except (UnidentifiedImageError, OSError) as e:
            raise EngineError(f"image is not a readable picture: {e}") from e
        img = img.resize((self._IMAGE_PX, self._IMAGE_PX))
        x = torch.tensor(np.asarray(img, dtype=np.float32) / 127.5 - 1.0)
        return x.permute(2, 0, 1).unsqueeze(0)

    def run_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import torch

        out = []
        n_patches = (self._IMAGE_PX // self._PATCH_PX) ** 2
        for r in requests:
            max_new = int(r.get("max_tokens") or 16)
            images = r.get("images_png") or []
            if self._processor is not None:
                from PIL import Image

                pics = [Image.open(io.BytesIO(b)).convert("RGB") for b in images] or None
                inputs = self._processor(text=r["prompt"], images=pics, return_tensors="pt").to(
                    self._model.device
                )
                with torch.no_grad():
                    ids = self._model.generate(**inputs, max_new_tokens=max_new)
                n_in = inputs["input_ids"].shape[1]
                text = self._processor.decode(ids[0, n_in:], skip_special_tokens=True)
                out.append({"text": text, "completion_tokens": int(ids.shape[1] - n_in)})
                continue
            ids = synthetic_ids(r["prompt"], 128)
            kwargs: dict[str, Any] = {}
            if images:
                ids = [1] + [self._IMAGE_TOKEN] * n_patches * len(images) + ids[1:]
                kwargs["pixel_values"] = torch.cat([self._pixels(b) for b in images])
            seq = torch.tensor([ids])
            new: list[int] = []
            with torch.no_grad():
                for _ in range(max_new):
                    logits = self._model(input_ids=seq, **kwargs).logits
                    nxt = int(logits[0, -1].argmax())
                    if nxt == 2:
                        break
                    new.append(nxt)
                    seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
            out.append({"text": synthetic_text(new), "completion_tokens": len(new)})
        return out

    def memory_bytes(self) -> int:
        return torch_bytes(self._model)
