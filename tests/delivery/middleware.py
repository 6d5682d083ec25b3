"""A middleware for tests: stamps every response and records the paths it saw."""

seen: list[str] = []


class StampMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        seen.append(request.path)
        response = self.get_response(request)
        response["X-Stamped"] = "yes"
        return response
