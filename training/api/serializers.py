"""Serializers for training runs."""

from rest_framework import serializers

from training.models import ActivationPolicy, TrainingRun, TrainingSource


class TrainingRunSerializer(serializers.ModelSerializer):
    """A training run's state, progress and outcome (the model version it produced)."""

    model_version = serializers.SlugRelatedField(slug_field="number", read_only=True)

    class Meta:
        model = TrainingRun
        fields = [
            "id", "status", "source", "source_path", "options", "activation_policy",
            "progress", "progress_detail", "error", "model_version", "activated",
            "created_at", "started_at", "finished_at",
        ]
        read_only_fields = fields


class TrainingRunCreateSerializer(serializers.Serializer):
    """What to train on and how; options are hyper-parameters (see the README's table)."""

    options = serializers.DictField(required=False, default=dict,
                                    help_text='Hyper-parameters, e.g. {"epochs": 5}.')
    source = serializers.ChoiceField(choices=TrainingSource.choices,
                                     default=TrainingSource.CATALOG)
    source_path = serializers.CharField(required=False, allow_blank=True, default="",
                                        max_length=500,
                                        help_text="Server folder or zip, for source=folder.")
    activation_policy = serializers.ChoiceField(choices=ActivationPolicy.choices,
                                                default=ActivationPolicy.IF_BETTER)

    def validate(self, attrs):
        if attrs["source"] == TrainingSource.FOLDER and not attrs.get("source_path"):
            raise serializers.ValidationError(
                {"source_path": "Give the server path of the image folder or zip to train on."}
            )
        return attrs
