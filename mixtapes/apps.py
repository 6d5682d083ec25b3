from django.apps import AppConfig


class MixtapesConfig(AppConfig):
    name = "mixtapes"
    verbose_name = "Mixtapes and library"
