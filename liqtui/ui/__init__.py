"""The terminal UI (Textual). Imported lazily by the CLI, after --colors has set TEXTUAL_COLOR_SYSTEM."""
