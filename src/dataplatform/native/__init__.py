"""Native runtime: the platform's services as local processes under supervisord."""
