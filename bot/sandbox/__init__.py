"""Local stand-ins that speak the real wire protocols, and the sandbox console."""
