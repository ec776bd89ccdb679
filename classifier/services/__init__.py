"""Classifier writes and workflows; import services from here (``classifier.services``)."""

from classifier.services.duplicates import (
    duplicate_pair_dismiss,
    duplicate_pair_unpublish_copy,
    duplicate_pairs_find,
)
from classifier.services.embeddings import (
    product_embeddings_store,
    products_embeddings_backfill,
)
from classifier.services.jobs import (
    classification_chunk_failed,
    classification_chunk_run,
    classification_job_run_sync,
    classification_job_start,
    classification_jobs_resume_stalled,
    classify_products,
)
from classifier.services.model_versions import model_version_activate
from classifier.services.predict import predict_images, product_classify_on_commit
from classifier.services.review import (
    product_accept_prediction,
    product_review_decide,
    products_accept_predictions,
    products_send_to_review,
)
from classifier.services.similar import products_like_image, similar_products
from classifier.services.similarity_index import similarity_index_refresh

__all__ = [
    "duplicate_pair_dismiss",
    "duplicate_pair_unpublish_copy",
    "duplicate_pairs_find",
    "product_embeddings_store",
    "products_embeddings_backfill",
    "products_like_image",
    "similar_products",
    "similarity_index_refresh",
    "classification_chunk_failed",
    "classification_chunk_run",
    "classification_job_run_sync",
    "classification_job_start",
    "classification_jobs_resume_stalled",
    "classify_products",
    "model_version_activate",
    "predict_images",
    "product_accept_prediction",
    "product_classify_on_commit",
    "product_review_decide",
    "products_accept_predictions",
    "products_send_to_review",
]
