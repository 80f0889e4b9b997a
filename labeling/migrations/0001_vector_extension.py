from django.db import migrations
from pgvector.django import VectorExtension


class Migration(migrations.Migration):
    """pgvector first: every app above relies on it (embeddings, similarity)."""

    initial = True
    dependencies = []
    operations = [VectorExtension()]
