"""HOI classifier: learnable prompts ``[PREFIX] verb [CONJUN] object`` through CLIP's text encoder,
cosine similarity with a learnable temperature and bias, sigmoid (multi-label).

The text side depends only on the vocabulary, so :meth:`HOIClassifier.text_embeddings`
is what ``compress.bake`` runs once and stores with an artifact.
"""

from __future__ import annotations

import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from hoi_edge.core.errors import VocabularyError
from hoi_edge.core.scoring import ScoringParams
from hoi_edge.data.vocabulary import Vocabulary
from hoi_edge.model.clip_encoders import clip_tokenizer, encode_text_embeddings
from hoi_edge.model.config import HOIConfig

PLACEHOLDER = "X"


def clip_logits(embeddings: torch.Tensor, text: torch.Tensor, scale: torch.Tensor | float,
                bias: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Logits of L2-normalised embeddings (..., E) against the text bank (C, E): cosine similarity times the
    learnt temperature plus the learnt bias. The torch twin of :func:`hoi_edge.core.scoring.clip_logits`."""
    return scale * embeddings @ text.t() + bias


class PromptLearner(nn.Module):
    """Holds the learnable context vectors and splices them into per-class prompt embeddings."""

    def __init__(self, clip: open_clip.CLIP, prefix_init: str, conjunction_init: str) -> None:
        super().__init__()
        self.tokenizer = clip_tokenizer(clip)
        self.context_length = clip.context_length
        with torch.no_grad():
            self.prefix = nn.Parameter(self._embed_words(clip, prefix_init))
            self.conjunction = nn.Parameter(self._embed_words(clip, conjunction_init))
        self.register_buffer("token_ids", torch.zeros(0, self.context_length, dtype=torch.long), persistent=False)
        self.register_buffer("conj_index", torch.zeros(0, self.conjunction.shape[0], dtype=torch.long), persistent=False)

    def _embed_words(self, clip: open_clip.CLIP, text: str) -> torch.Tensor:
        ids = self.tokenizer.encode(text)
        if not ids:
            raise ValueError(f"prompt context initialiser {text!r} has no tokens")
        return clip.token_embedding.weight[torch.tensor(ids)].detach().clone()

    def set_vocabulary(self, vocab: Vocabulary) -> None:
        """Tokenise ``SOT [PREFIX] verb [CONJUN] object EOT`` for every class of ``vocab``."""
        tok = self.tokenizer
        n_prefix, n_conj = self.prefix.shape[0], self.conjunction.shape[0]
        placeholder = tok.encode(PLACEHOLDER)[0]
        rows, conj = [], []
        for verb, obj in vocab.prompt_parts():
            verb_ids, obj_ids = tok.encode(verb), tok.encode(obj)
            ids = [tok.sot_token_id] + [placeholder] * n_prefix + verb_ids
            conj.append(list(range(len(ids), len(ids) + n_conj)))
            ids += [placeholder] * n_conj + obj_ids + [tok.eot_token_id]
            if len(ids) > self.context_length:
                raise VocabularyError(
                    f"prompt for '{verb} {obj}' is {len(ids)} tokens, longer than CLIP's context ({self.context_length})"
                )
            rows.append(ids + [0] * (self.context_length - len(ids)))
        device = self.prefix.device
        self.token_ids = torch.tensor(rows, dtype=torch.long, device=device)
        self.conj_index = torch.tensor(conj, dtype=torch.long, device=device)

    def forward(self, token_embedding: nn.Embedding) -> torch.Tensor:
        emb = token_embedding(self.token_ids)
        c = emb.shape[0]
        rows = torch.arange(c, device=emb.device).unsqueeze(1)
        prefix_pos = torch.arange(1, 1 + self.prefix.shape[0], device=emb.device).expand(c, -1)
        emb = emb.index_put((rows.expand_as(prefix_pos), prefix_pos), self.prefix.expand(c, -1, -1).to(emb.dtype))
        return emb.index_put((rows.expand_as(self.conj_index), self.conj_index),
                             self.conjunction.expand(c, -1, -1).to(emb.dtype))


class HOIClassifier(nn.Module):
    """Scores pair and global image embeddings against the vocabulary's prompt embeddings."""

    def __init__(self, clip: open_clip.CLIP, cfg: HOIConfig, vocab: Vocabulary) -> None:
        super().__init__()
        self.cfg = cfg
        self.prompts = PromptLearner(clip, cfg.prefix_init, cfg.conjunction_init)
        self.pair_logit_scale = nn.Parameter(torch.tensor(float(cfg.init_logit_scale)).log())
        self.pair_logit_bias = nn.Parameter(torch.tensor(float(cfg.init_logit_bias)))
        self.global_logit_scale = nn.Parameter(torch.tensor(float(cfg.init_logit_scale)).log())
        self.global_logit_bias = nn.Parameter(torch.tensor(float(cfg.init_logit_bias)))
        self.set_vocabulary(vocab)

    def set_vocabulary(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self.prompts.set_vocabulary(vocab)

    def text_embeddings(self, clip: open_clip.CLIP) -> torch.Tensor:
        """(C,E) L2-normalised text embeddings of every class prompt."""
        emb = self.prompts(clip.token_embedding)
        return F.normalize(encode_text_embeddings(clip, emb, self.prompts.token_ids), dim=-1)

    def logits(self, pair_emb: torch.Tensor, global_emb: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pairwise (B,P,C) and global (B,C) logits; inputs are already L2-normalised."""
        pair = clip_logits(pair_emb, text, self.pair_logit_scale.exp(), self.pair_logit_bias)
        glob = clip_logits(global_emb, text, self.global_logit_scale.exp(), self.global_logit_bias)
        return pair, glob

    @torch.no_grad()
    def scoring_params(self) -> ScoringParams:
        return ScoringParams(
            pair_scale=float(self.pair_logit_scale.exp()), pair_bias=float(self.pair_logit_bias),
            global_scale=float(self.global_logit_scale.exp()), global_bias=float(self.global_logit_bias),
            global_weight=self.cfg.global_weight, detector_score_power=self.cfg.detector_score_power,
        )
