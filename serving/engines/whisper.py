"""The `whisper` backend: speech-to-text with transformers' Whisper, real weights from a local
path or a tiny synthetic configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from serving.engines.base import (
    SAMPLE_RATE_HZ,
    SYN_VOCAB,
    device_dtype,
    offline,
    synthetic_text,
    torch_bytes,
)

if TYPE_CHECKING:
    from serving.config import ModelServerConfig


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
        offline()
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
            device, dtype = device_dtype(self.config)
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
            vocab_size=SYN_VOCAB,
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
        return torch_bytes(self._model)
