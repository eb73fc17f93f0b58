"""Shotoku's desktop app (PySide6). Imports ``engine``; ``engine`` never imports this package."""
