"""Shared mechanism that two or more apps need and no app owns (DESIGN.md section 3): no domain models."""
