"""The data model: endpoints, cluster servers, access control (implements ``im.provider``)."""
