"""One conversation's message pane: sender, time and text per message, notices in grey italics,
tombstones, "(edited)", reactions; each message tagged ``m<id>`` so it can be redrawn in place,
found (search), and right-clicked (its context menu)."""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Callable, Iterable, Optional

from chatcore_client.state import Line, local_time
from chatcore_client.views import theme


class MessagePane(ttk.Frame):
    """A read-only Text with sender, time and text per message, and notices in grey italics."""

    def __init__(self, master: tk.Misc, key: str, at_top: Callable[[str], None],
                 context: Callable[[str, int, int, int], None] = lambda key, line_id, x, y: None) -> None:
        super().__init__(master)
        self.key = key
        self._at_top = at_top
        self._context = context
        self.text = tk.Text(self, wrap="word", state="disabled", relief="flat", padx=14, pady=10,
                            background=theme.PANE, spacing1=2, spacing3=2, cursor="arrow",
                            font=("TkTextFont", 11))
        scroll = ttk.Scrollbar(self, orient="vertical", command=self.text.yview)
        self.text.configure(yscrollcommand=lambda first, last: self._scrolled(scroll, first, last))
        self.text.grid(row=0, column=0, sticky="nsew")
        scroll.grid(row=0, column=1, sticky="ns")
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)
        self.text.tag_configure("sender", font=("TkTextFont", 11, "bold"), foreground=theme.OTHER)
        self.text.tag_configure("own", font=("TkTextFont", 11, "bold"), foreground=theme.OWN)
        self.text.tag_configure("time", foreground=theme.MUTED, font=("TkTextFont", 9))
        self.text.tag_configure("body", lmargin1=4, lmargin2=4, spacing3=8)
        self.text.tag_configure("mention", background=theme.MENTION)
        self.text.tag_configure("notice", foreground=theme.MUTED, font=("TkTextFont", 10, "italic"),
                                justify="center", spacing1=4, spacing3=6)
        self.text.tag_configure("deleted", foreground=theme.MUTED, font=("TkTextFont", 10, "italic"))
        self.text.tag_configure("reactions", foreground=theme.MUTED, lmargin1=4, spacing3=8)
        self.text.tag_configure("found", background=theme.MENTION)
        self.text.bind("<Button-3>", self._right_click)
        self.lines = 0

    def _scrolled(self, scroll: ttk.Scrollbar, first: "str | float", last: "str | float") -> None:
        scroll.set(first, last)
        if float(first) <= 0.0 and self.winfo_ismapped():
            self._at_top(self.key)

    def _chunks(self, line: Line) -> list[tuple[str, tuple[str, ...]]]:
        if line.notice:
            return [(f"— {line.text} —\n", ("notice",))]
        when = local_time(line.ts) if line.ts else ""
        extra = "  (sent while you were offline)" if line.offline else ""
        extra += "  (edited)" if line.edited and not line.deleted else ""
        mark = (f"m{line.id}",) if isinstance(line.id, int) else ()  # one tag per message: found, redrawn
        body = ("body", "mention") if line.mention else ("body",)
        chunks = [(line.sender, ("own" if line.own else "sender", *mark)), (f"  {when}{extra}\n", ("time", *mark)),
                  ("message deleted\n", ("body", "deleted", *mark)) if line.deleted else (f"{line.text}\n", (*body, *mark))]
        if line.reactions:
            shown = "   ".join(f"{emoji} {count}" + ("•" if mine else "") for emoji, count, mine in line.reactions)
            chunks.append((f"{shown}\n", ("reactions", *mark)))
        return chunks

    def replace(self, line: Line) -> bool:
        """Redraw a shown message in place (edited, deleted, reactions); False if it is not here."""
        ranges = self.text.tag_ranges(f"m{line.id}")
        if not ranges:
            return False
        self.text.configure(state="normal")
        start = self.text.index(ranges[0])
        self.text.delete(ranges[0], ranges[-1])
        for chunk, tags in reversed(self._chunks(line)):
            self.text.insert(start, chunk, tags)
        self.text.configure(state="disabled")
        return True

    def message_at(self, index: str) -> Optional[int]:
        """The id of the message at a text index, if any."""
        for tag in self.text.tag_names(index):
            if tag.startswith("m") and tag[1:].isdigit():
                return int(tag[1:])
        return None

    def see_message(self, line_id: int) -> bool:
        """Scroll to a message and mark it (a search result); False if it is not loaded."""
        ranges = self.text.tag_ranges(f"m{line_id}")
        if not ranges:
            return False
        self.text.tag_remove("found", "1.0", "end")
        self.text.tag_add("found", ranges[0], ranges[-1])
        self.text.see(ranges[0])
        return True

    def _right_click(self, event: tk.Event) -> None:
        line_id = self.message_at(self.text.index(f"@{event.x},{event.y}"))
        if line_id is not None:
            self._context(self.key, line_id, event.x_root, event.y_root)

    def add(self, lines: Iterable[Line], at_start: bool) -> None:
        """Append newer lines (following the end if it was visible) or insert older ones on top."""
        lines = list(lines)
        if not lines:
            return
        following = self.text.yview()[1] >= 0.999
        self.text.configure(state="normal")
        if at_start:
            self.text.mark_set("previous_top", "1.0")
            self.text.mark_gravity("previous_top", "right")
            for line in reversed(lines):
                for chunk, tags in reversed(self._chunks(line)):
                    self.text.insert("1.0", chunk, tags)
            self.text.yview("previous_top")
        else:
            for line in lines:
                for chunk, tags in self._chunks(line):
                    self.text.insert("end-1c", chunk, tags)
            if following:
                self.text.see("end")
        self.text.configure(state="disabled")
        self.lines += len(lines)

    def content(self) -> str:
        """The pane's text (for tests and accessibility tools)."""
        return self.text.get("1.0", "end-1c")
