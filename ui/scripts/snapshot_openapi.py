"""Writes ui/openapi.json from the API (routes do not depend on which features run), so
`npm run gen:api` types the client against what the server really offers."""

import json
import sys
from pathlib import Path

from crm_api.app import create_app
from crm_api.platform.settings import Settings

settings = Settings(_env_file=None)  # type: ignore[call-arg]
doc = create_app(settings).openapi()
out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / "openapi.json")
out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
print(f"{out}: {len(doc['paths'])} paths")
