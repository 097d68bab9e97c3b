"""The single binary's entry point (PyInstaller runs this file, not ``-m mediad``)."""

from mediad.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
