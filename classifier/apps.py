from django.apps import AppConfig


class ClassifierConfig(AppConfig):
    name = "classifier"
    verbose_name = "Classifier"

    def ready(self):
        from classifier import signals

        signals.connect()  # auto-classification of new or changed product images
