"""Spec loader, validators and the DDL / manifest / form compilers."""
