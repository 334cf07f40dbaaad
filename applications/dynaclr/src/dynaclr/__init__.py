"""dynaclr."""
