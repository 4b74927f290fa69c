"""The existing `pipelines` table as an unmanaged model: Django reads it, never creates or alters it."""
from __future__ import annotations

from django.db import models

STATUSES = [("draft", "Draft"), ("active", "Active"), ("disabled", "Disabled"), ("archived", "Archived")]


class Pipeline(models.Model):
    id = models.CharField(max_length=32, primary_key=True)
    code = models.CharField("code", max_length=64, unique=True)
    name = models.CharField("name", max_length=255, unique=True)
    description = models.TextField(null=True, blank=True)
    status = models.CharField("status", max_length=16, choices=STATUSES, default="draft")
    owner = models.CharField("owner", max_length=32, null=True, blank=True)
    published_version = models.IntegerField("published version", null=True, blank=True)
    created_at = models.DateTimeField("created at", null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=32, null=True, blank=True)

    class Meta:
        managed = False
        db_table = "pipelines"

    def __str__(self) -> str:
        return self.code
