"""The `diffusers` backend: text-to-image with diffusers' Stable Diffusion pipeline, real
weights from a local path or a tiny synthetic configuration."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any, ClassVar

from serving.engines.base import SYN_VOCAB, device_dtype, offline, synthetic_ids, torch_bytes

if TYPE_CHECKING:
    from serving.config import ModelServerConfig


class DiffusersEngine:
    """Text-to-image with the Stable Diffusion pipeline (CLIP text encoder, UNet, VAE)."""

    backend: ClassVar[str] = "diffusers"

    def __init__(self, config: ModelServerConfig) -> None:
        self.config = config
        self.synthetic_weights = config.weights_path is None
        self.weights = config.weights_path or "synthetic:stable-diffusion-tiny-config"
        self._pipe: Any = None

    def load(self) -> None:
        offline()
        import torch
        from diffusers import (
            AutoencoderKL,
            DDIMScheduler,
            StableDiffusionPipeline,
            UNet2DConditionModel,
        )
        from transformers import CLIPTextConfig, CLIPTextModel

        if self.config.weights_path:
            device, dtype = device_dtype(self.config)
            self._pipe = StableDiffusionPipeline.from_pretrained(
                self.config.weights_path, local_files_only=True, safety_checker=None, dtype=dtype
            ).to(device)
        else:
            torch.manual_seed(self.config.seed)
            unet = UNet2DConditionModel(
                sample_size=8,
                in_channels=4,
                out_channels=4,
                layers_per_block=1,
                block_out_channels=(32, 64),
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                cross_attention_dim=32,
                attention_head_dim=8,
                norm_num_groups=32,
            )
            vae = AutoencoderKL(
                in_channels=3,
                out_channels=3,
                down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
                block_out_channels=(32, 64),
                latent_channels=4,
                norm_num_groups=32,
            )
            text = CLIPTextModel(
                CLIPTextConfig(
                    vocab_size=SYN_VOCAB,
                    hidden_size=32,
                    intermediate_size=64,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    max_position_embeddings=77,
                    projection_dim=32,
                )
            ).eval()
            self._pipe = StableDiffusionPipeline(
                vae=vae,
                text_encoder=text,
                tokenizer=None,
                unet=unet,
                scheduler=DDIMScheduler(clip_sample=False),
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            )
        self._pipe.set_progress_bar_config(disable=True)

    def run_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import torch

        results = []
        # One pipeline call per distinct (size, steps); prompts of a group run as one batch.
        groups: dict[tuple[int, int], list[int]] = {}
        for i, r in enumerate(requests):
            px = int(r.get("size_px") or self.config.image_px)
            steps = min(int(r.get("steps") or 4), self.config.max_steps)
            groups.setdefault((px, steps), []).append(i)
        images: dict[int, list[Any]] = {}
        gen = torch.Generator().manual_seed(self.config.seed)
        for (px, steps), idx in groups.items():
            prompts = [requests[i]["prompt"] for i in idx]
            counts = [int(requests[i].get("n") or 1) for i in idx]
            kwargs: dict[str, Any] = {
                "num_inference_steps": steps,
                "height": px,
                "width": px,
                "generator": gen,
                "output_type": "pil",
            }
            if self.synthetic_weights:
                # No tokenizer files exist for synthetic weights: embed byte ids directly.
                with torch.no_grad():
                    embeds = [
                        self._pipe.text_encoder(torch.tensor([synthetic_ids(p, 77)]))[0]
                        for p in prompts
                    ]
                width = max(e.shape[1] for e in embeds)
                embeds = [torch.nn.functional.pad(e, (0, 0, 0, width - e.shape[1])) for e in embeds]
                kwargs["prompt_embeds"] = torch.cat(
                    [e.repeat(c, 1, 1) for e, c in zip(embeds, counts, strict=True)]
                )
                kwargs["guidance_scale"] = 1.0
                out = self._pipe(**kwargs).images
            else:
                flat = [p for p, c in zip(prompts, counts, strict=True) for _ in range(c)]
                out = self._pipe(prompt=flat, **kwargs).images
            pos = 0
            for i, c in zip(idx, counts, strict=True):
                images[i] = out[pos : pos + c]
                pos += c
        for i in range(len(requests)):
            encoded = []
            for img in images[i]:
                buf = io.BytesIO()
                img.save(buf, format="PNG")
                encoded.append(base64.b64encode(buf.getvalue()).decode("ascii"))
            results.append({"images_b64": encoded})
        return results

    def memory_bytes(self) -> int:
        p = self._pipe
        return torch_bytes(p.unet, p.vae, p.text_encoder) if p is not None else 0
