"""The reviewer service: FastAPI app, storage, sign-in, review pages, import and export.

Imports ``model`` only, never ``training`` or ``datasets``.
"""
