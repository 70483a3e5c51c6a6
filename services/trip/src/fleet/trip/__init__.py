"""Trip service: trips, routes, tracking, the booking saga and trip analytics."""
