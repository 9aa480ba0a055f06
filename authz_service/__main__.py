import sys

from authz_service.cli.main import main

sys.exit(main())
