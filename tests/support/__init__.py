"""Test support: free ports, condition waits, and real servers started per test session."""
