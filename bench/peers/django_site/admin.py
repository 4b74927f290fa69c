"""The list as Pipeline-App's: 6 columns, 20 rows a page, newest first, search, a status filter."""
from __future__ import annotations

from django.contrib import admin

from .models import Pipeline


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "status", "owner", "published_version", "created_at")
    list_per_page = 20
    search_fields = ("code", "name", "owner")
    list_filter = ("status",)
    ordering = ("-created_at", "-id")
