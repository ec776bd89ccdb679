"""Similar products, search by photo and near-duplicates from image embeddings (Django-free)."""
