"""A request's output text, built token by token, with stop strings cut out and never streamed early.

The checkpoints' tokenizers are byte-level BPE (curate.shards.bpe): a token decodes to its own bytes
whatever precedes it, so the text grows by decoding only the tokens not yet in it. A token that ends in
the middle of a UTF-8 character decodes to a trailing U+FFFD; its text waits for the character's last
bytes. Text that could be the start of a stop string is held back until the next tokens show that it is
not (then it is released) or that it is (then it is cut, with the stop string, and never sent).
"""

from __future__ import annotations

from tokenizers import Tokenizer


class OutputText:
    """The text of one output so far: `add` tokens, `release` what may be shown."""

    def __init__(self, tokenizer: Tokenizer, stop: list[str]) -> None:
        self._tokenizer = tokenizer
        self._stop = stop
        self._longest_stop = max(map(len, stop), default=0)
        self._pending: list[int] = []  # tokens whose text is not in `text` yet
        self._released = 0
        self.text = ""
        self.stopped = False

    def add(self, token_id: int) -> None:
        """Append a token's text, once its characters are whole; sets `stopped` on a stop string."""
        self._pending.append(token_id)
        piece = self._tokenizer.decode(self._pending, skip_special_tokens=True)
        if not piece.endswith("\ufffd"):
            self._append(piece)

    def flush(self) -> None:
        """No more tokens come: the bytes of an unfinished character become U+FFFD, as a full decode has it."""
        if self._pending:
            self._append(self._tokenizer.decode(self._pending, skip_special_tokens=True))

    def release(self, finished: bool) -> str:
        """The text not released before, less a tail that may still turn into a stop string."""
        end = len(self.text) if finished or self.stopped else len(self.text) - self._held_back()
        new = self.text[self._released : end]
        self._released = end
        return new

    def _append(self, piece: str) -> None:
        self._pending.clear()
        # A stop string that ends in `piece` starts at most longest-1 characters before it.
        start = max(0, len(self.text) - self._longest_stop + 1)
        self.text += piece
        cuts = [i for s in self._stop if (i := self.text.find(s, start)) != -1]
        if cuts:
            self.text = self.text[: min(cuts)]
            self.stopped = True

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of a stop string."""
        for k in range(min(self._longest_stop - 1, len(self.text)), 0, -1):
            tail = self.text[-k:]
            if any(s.startswith(tail) for s in self._stop):
                return k
        return 0
