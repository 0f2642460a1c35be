"""The one declaration of the appliance's services, rendered for supervisord and systemd."""
