"""Real parts for the tests: loopback HTTP servers, worker processes, service discovery."""
