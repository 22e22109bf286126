"""The three small LSTM networks of the NLP tasks: a character LM, an intent classifier, a translator.

Each keeps its constructor arguments in ``self.config`` so a checkpoint can rebuild it.

>>> import torch
>>> from hmf_lab.nlp.networks import CharLM
>>> CharLM(vocab_size=10, embed=8, hidden=16)(torch.zeros(2, 5, dtype=torch.long)).shape
torch.Size([2, 5, 10])
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hmf_lab.nlp.vocab import BOS, EOS, PAD, CharVocab

__all__ = ["CharLM", "IntentClassifier", "Translator", "CharTransformer", "TransformerIntentClassifier",
           "CausalSelfAttention", "Block", "KVCache"]


class CharLM(nn.Module):
    """Character-level LSTM language model: embedding -> LSTM -> linear decoder to next-char logits.

    >>> m = CharLM(vocab_size=5, embed=4, hidden=8)
    >>> logits, (h, c) = m(torch.zeros(1, 3, dtype=torch.long), return_state=True)
    >>> logits.shape, h.shape
    (torch.Size([1, 3, 5]), torch.Size([1, 1, 8]))
    """

    def __init__(self, vocab_size: int, embed: int = 64, hidden: int = 256, layers: int = 1):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, embed=embed, hidden=hidden, layers=layers)
        self.embedding = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab_size)

    def forward(self, x, state=None, return_state: bool = False):
        out, state = self.lstm(self.embedding(x), state)   # (B, T, H)
        logits = self.decoder(out)                          # (B, T, V)
        return (logits, state) if return_state else logits

    @torch.no_grad()
    def generate(self, vocab: CharVocab, prompt: str = "\n", length: int = 200, temperature: float = 0.8,
                 seed: int = 0) -> str:
        """Sample ``length`` characters after ``prompt`` (seeded)."""
        g = torch.Generator().manual_seed(seed)
        self.eval()
        logits, state = self(vocab.encode(prompt)[None], return_state=True)
        out = []
        for _ in range(length):
            p = F.softmax(logits[0, -1] / temperature, dim=-1)
            nxt = torch.multinomial(p, 1, generator=g)
            out.append(int(nxt))
            logits, state = self(nxt[None], state, return_state=True)
        return prompt + vocab.decode(out)


class IntentClassifier(nn.Module):
    """LSTM intent classifier: word embedding -> LSTM -> last real time step -> linear to intents.

    Input: ``(B, T)`` word ids padded with 0 on the right.

    >>> m = IntentClassifier(vocab_size=20, n_classes=7, embed=8, hidden=16)
    >>> m(torch.tensor([[5, 6, 0], [7, 0, 0]])).shape
    torch.Size([2, 7])
    """

    def __init__(self, vocab_size: int, n_classes: int, embed: int = 64, hidden: int = 128):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, n_classes=n_classes, embed=embed, hidden=hidden)
        self.embedding = nn.Embedding(vocab_size, embed, padding_idx=PAD)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, x):
        out, _ = self.lstm(self.embedding(x))                           # (B, T, H)
        last = (x != PAD).sum(1).clamp(min=1) - 1                         # (B,)
        h = out[torch.arange(x.shape[0]), last]                           # (B, H)
        return self.classifier(h)                                         # (B, C)


class Translator(nn.Module):
    """LSTM encoder–decoder with dot-product (Luong) attention, word level.

    ``forward(src, tgt_in)`` (teacher forcing) returns ``(B, T_tgt, V_tgt)`` logits; ``translate``
    decodes greedily.

    >>> m = Translator(src_vocab=12, tgt_vocab=15, embed=8, hidden=16)
    >>> m(torch.tensor([[5, 6, 3]]), torch.tensor([[2, 7]])).shape
    torch.Size([1, 2, 15])
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, embed: int = 64, hidden: int = 256):
        super().__init__()
        self.config = dict(src_vocab=src_vocab, tgt_vocab=tgt_vocab, embed=embed, hidden=hidden)
        self.src_embedding = nn.Embedding(src_vocab, embed, padding_idx=PAD)
        self.tgt_embedding = nn.Embedding(tgt_vocab, embed, padding_idx=PAD)
        self.encoder = nn.LSTM(embed, hidden, batch_first=True)
        self.decoder = nn.LSTM(embed, hidden, batch_first=True)
        self.combine = nn.Linear(2 * hidden, hidden)
        self.out = nn.Linear(hidden, tgt_vocab)

    def encode(self, src):
        enc, state = self.encoder(self.src_embedding(src))                # (B, S, H)
        return enc, state, src != PAD

    def _step(self, enc, mask, tgt_in, state):
        dec, state = self.decoder(self.tgt_embedding(tgt_in), state)      # (B, T, H)
        scores = dec @ enc.transpose(1, 2)                                # (B, T, S)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        ctx = F.softmax(scores, dim=-1) @ enc                             # (B, T, H)
        h = torch.tanh(self.combine(torch.cat([dec, ctx], dim=-1)))       # (B, T, H)
        return self.out(h), state                                         # (B, T, V)

    def forward(self, src, tgt_in):
        enc, state, mask = self.encode(src)
        return self._step(enc, mask, tgt_in, state)[0]

    @torch.no_grad()
    def translate(self, src, max_len: int = 60) -> list[list[int]]:
        """Greedy decoding; returns the target ids of each sentence, without ``<s>`` and ``</s>``."""
        enc, state, mask = self.encode(src)
        B = src.shape[0]
        tok = torch.full((B, 1), BOS, dtype=torch.long)
        outs = torch.zeros(B, 0, dtype=torch.long)
        done = torch.zeros(B, dtype=torch.bool)
        for _ in range(max_len):
            logits, state = self._step(enc, mask, tok, state)
            tok = logits[:, -1].argmax(-1, keepdim=True)                  # (B, 1)
            outs = torch.cat([outs, tok], 1)
            done |= tok[:, 0] == EOS
            if bool(done.all()):
                break
        res = []
        for row in outs.tolist():
            res.append(row[:row.index(EOS)] if EOS in row else row)
        return res


# ------------------------------------------------------------------------------------ transformers


def _embed(tokens: nn.Embedding, positions: nn.Embedding, x: torch.Tensor, start: int, limit: str, fix: str):
    """Token plus learned position embeddings of ``x`` (B, T) at positions ``start .. start + T - 1``; a
    ValueError naming the model's ``limit`` (its position table's size) and the ``fix`` when they do not fit."""
    T, n = x.shape[1], positions.num_embeddings
    if start + T > n:
        raise ValueError(f"input reaches position {start + T}, the model's {limit} is {n}; {fix.format(n=n)}")
    return tokens(x) + positions(torch.arange(start, start + T, device=x.device))


class KVCache:
    """The keys and values a :class:`CharTransformer` has computed so far, one ``(k, v)`` pair per block, each
    ``(B, heads, length, d_model / heads)``: generation feeds one new character per step instead of the whole
    window (batch-1 decoding then reads every weight once per token, the regime where compression can pay).

    Pass it to ``model(ids, cache=cache)``: the new positions continue at ``cache.length`` and their keys and
    values are appended in place. A cache belongs to one model and one batch.

    >>> m = CharTransformer(vocab_size=7, d_model=16, heads=2, layers=2, context=8).eval()
    >>> ids = torch.tensor([[1, 2, 3, 4]])
    >>> cache = KVCache(2)
    >>> a = m(ids[:, :3], cache=cache); b = m(ids[:, 3:], cache=cache)
    >>> cache.length, torch.allclose(b[0, -1], m(ids)[0, -1], atol=1e-5)
    (4, True)
    """

    def __init__(self, layers: int):
        if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1:
            raise ValueError(f"KVCache needs the model's number of blocks (an int >= 1), got {layers!r}")
        self.kv: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * layers

    @property
    def length(self) -> int:
        """Positions cached so far (0 for a new cache)."""
        return 0 if self.kv[0] is None else int(self.kv[0][0].shape[2])

    def nbytes(self) -> int:
        """Bytes the cached keys and values hold now (what one more decoding step reads besides the weights)."""
        return sum(t.numel() * t.element_size() for pair in self.kv if pair is not None for t in pair)

    def __repr__(self) -> str:
        return f"KVCache(layers={len(self.kv)}, length={self.length})"


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with its own ``q``, ``k``, ``v`` and ``out`` ``nn.Linear`` layers.

    Separate projections (not one packed matrix): each is a plain ``nn.Linear``, so ``hl.compress`` and the
    calibration capture treat q, k and v as three layers, block by block (as the LSTM's gates), and a
    key/value cache holds ``k`` and ``v`` per layer (``forward(x, cache=(kv, i))``, see :class:`KVCache`).
    Attention is ``F.scaled_dot_product_attention``, causal over the cached and the new positions.

    >>> a = CausalSelfAttention(16, 4)
    >>> a(torch.randn(2, 5, 16)).shape
    torch.Size([2, 5, 16])
    """

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model must be a multiple of heads, got d_model={d_model}, heads={heads}")
        self.heads = heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, cache: tuple[KVCache, int] | None = None):
        B, T, E = x.shape
        q, k, v = (p(x).view(B, T, self.heads, E // self.heads).transpose(1, 2) for p in (self.q, self.k, self.v))
        if cache is not None:
            kv, i = cache
            if kv.kv[i] is not None:
                k, v = torch.cat([kv.kv[i][0], k], 2), torch.cat([kv.kv[i][1], v], 2)
            kv.kv[i] = (k, v)
        past = k.shape[2] - T
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)      # (B, h, T, E/h)
        elif T == 1:                                                          # one new position sees everything
            y = F.scaled_dot_product_attention(q, k, v)
        else:                                                                 # new position t sees past + t + 1
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(B, T, E))


class Block(nn.Module):
    """One pre-LayerNorm decoder block: ``x + attn(ln1(x))``, then ``x + fc2(gelu(fc1(ln2(x))))``.

    >>> Block(16, 4)(torch.randn(1, 3, 16)).shape
    torch.Size([1, 3, 16])
    """

    def __init__(self, d_model: int, heads: int, mlp: int = 4):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, mlp * d_model)
        self.fc2 = nn.Linear(mlp * d_model, d_model)

    def forward(self, x, cache: tuple[KVCache, int] | None = None):
        x = x + self.attn(self.ln1(x), cache)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class CharTransformer(nn.Module):
    """Character-level decoder-only transformer (GPT style): token + learned position embeddings, pre-LN
    blocks of causal self-attention and a GELU MLP, a final LayerNorm and a linear head to next-char logits.

    Input ``(B, T)`` character ids with ``T <= context``; output ``(B, T, vocab_size)`` logits.

    >>> m = CharTransformer(vocab_size=7, d_model=16, heads=2, layers=2, context=8)
    >>> m(torch.zeros(2, 5, dtype=torch.long)).shape
    torch.Size([2, 5, 7])
    """

    def __init__(self, vocab_size: int, d_model: int = 128, heads: int = 4, layers: int = 4, context: int = 128,
                 mlp: int = 4):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, d_model=d_model, heads=heads, layers=layers, context=context,
                           mlp=mlp)
        self.context = context
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads, mlp) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, x, cache: KVCache | None = None):
        """Logits ``(B, T, vocab_size)``. With ``cache`` (a :class:`KVCache`), ``x`` holds the *new* positions
        only: they continue at ``cache.length`` and their keys and values are appended to the cache."""
        start = 0
        if cache is not None:
            if not isinstance(cache, KVCache) or len(cache.kv) != len(self.blocks):
                raise TypeError(f"cache must be a KVCache({len(self.blocks)}) for this {len(self.blocks)}-block "
                                f"model, got {cache!r}; make one with KVCache(len(model.blocks))")
            start = cache.length
        h = _embed(self.embedding, self.position, x, start, "context", "feed windows of at most {n} characters "
                   "(with a cache: start a new one)")
        for i, blk in enumerate(self.blocks):
            h = blk(h, None if cache is None else (cache, i))
        return self.head(self.ln_f(h))

    @torch.no_grad()
    def decode(self, ids: torch.Tensor, length: int, *, use_cache: bool = True, temperature: float = 0.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Append ``length`` characters to ``ids`` (``(1, T)``), one at a time: the argmax at ``temperature=0``,
        else sampled from ``softmax(logits / temperature)``. With ``use_cache`` the prompt's window is encoded
        once and every step feeds one character through a :class:`KVCache`; once the sequence outgrows the
        context, every step re-encodes the last ``context`` characters (the same windows as ``use_cache=False``,
        so both give the same characters). Returns ``(1, T + length)``.

        >>> m = CharTransformer(vocab_size=7, d_model=16, heads=2, layers=2, context=8).eval()
        >>> ids = torch.tensor([[1, 2, 3]])
        >>> torch.equal(m.decode(ids, 10), m.decode(ids, 10, use_cache=False))
        True
        """
        if ids.dim() != 2 or ids.shape[0] != 1 or ids.shape[1] < 1:
            raise ValueError(f"decode takes one prompt of shape (1, T) with T >= 1, got {tuple(ids.shape)}")
        if not isinstance(length, int) or length < 0:
            raise ValueError(f"length must be an int >= 0 (characters to append), got {length!r}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = argmax), got {temperature}")
        cache = KVCache(len(self.blocks)) if use_cache else None
        logits = self(ids[:, -self.context:], cache=cache)
        out = [ids]
        for step in range(length):
            last = logits[0, -1]
            nxt = (last.argmax() if temperature == 0 else
                   torch.multinomial(F.softmax(last / temperature, dim=-1), 1, generator=generator)[0])
            out.append(nxt.view(1, 1))
            if step == length - 1:
                break
            if cache is not None and cache.length < self.context:
                logits = self(out[-1], cache=cache)
            else:
                cache = None     # the window slides: absolute positions change, so the cache no longer applies
                window = torch.cat(out, 1)[:, -self.context:]
                logits = self(window)
        return torch.cat(out, 1)

    @torch.no_grad()
    def generate(self, vocab: CharVocab, prompt: str = "\n", length: int = 200, temperature: float = 0.8,
                 seed: int = 0, use_cache: bool = True) -> str:
        """Sample ``length`` characters after ``prompt`` (seeded; the last ``context`` characters condition;
        :meth:`decode` with a key/value cache by default).

        >>> v = CharVocab("abc")
        >>> len(CharTransformer(len(v), d_model=8, heads=2, layers=1, context=4).generate(v, "ab", 6))
        8
        """
        g = torch.Generator().manual_seed(seed)
        self.eval()
        ids = self.decode(vocab.encode(prompt)[None], length, use_cache=use_cache, temperature=temperature,
                          generator=g)
        return prompt + vocab.decode(ids[0, -length:].tolist()) if length else prompt


class TransformerIntentClassifier(nn.Module):
    """SNIPS intent classifier on PyTorch's own ``nn.TransformerEncoder`` / ``nn.TransformerEncoderLayer``.

    Word + learned position embeddings -> encoder (``batch_first``, GELU, post-LN as PyTorch's default) with
    ``src_key_padding_mask = (x == PAD)`` -> mean over the real tokens -> linear to intents. Input: ``(B, T)``
    word ids padded with 0 on the right, ``T <= max_len``. ``enable_nested_tensor=False``: PyTorch's nested-tensor
    path (a prototype that warns on every call) is not used; the layers' fused eval fast path still is.

    >>> m = TransformerIntentClassifier(vocab_size=20, n_classes=7, d_model=16, heads=2, layers=1, ff=32)
    >>> m(torch.tensor([[5, 6, 0], [7, 0, 0]])).shape
    torch.Size([2, 7])
    """

    def __init__(self, vocab_size: int, n_classes: int, d_model: int = 64, heads: int = 4, layers: int = 2,
                 ff: int = 128, max_len: int = 40, dropout: float = 0.1):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, n_classes=n_classes, d_model=d_model, heads=heads, layers=layers,
                           ff=ff, max_len=max_len, dropout=dropout)
        self.max_len = max_len
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.position = nn.Embedding(max_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=ff, dropout=dropout, activation="gelu",
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.classifier = nn.Linear(d_model, n_classes)

    def forward(self, x):
        pad = x == PAD                                                      # (B, T), True where padding
        h = _embed(self.embedding, self.position, x, 0, "max_len", "cut the utterances to {n} words")
        h = self.encoder(h, src_key_padding_mask=pad)                       # (B, T, E)
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        pooled = (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)            # (B, E)
        return self.classifier(pooled)                                      # (B, C)
