"""The cxnlp HTTP service (FastAPI): `cxnlp serve`, or `create_app(Settings(...))` in code.

The service imports cxnlp; cxnlp never imports the service.
"""

from service.app import create_app
from service.settings import Settings

__all__ = ["Settings", "create_app"]
