#!/usr/bin/perl
# Counts through an established TCP connection: each number is sent by the client end, read back
# at the accepted end, and only then written to /tmp/counter, as `ID COUNT` after a random
# identity read once at start and kept in memory. The counter keeps growing after a restore only
# if the connection itself was restored; a restart shows another identity.
use strict;
use warnings;
use IO::Socket::INET;

open(my $uuid, '<', '/proc/sys/kernel/random/uuid') or die "uuid: $!";
chomp(my $id = <$uuid>);
close $uuid;
my $listener = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 7000, Listen => 1, ReuseAddr => 1)
    or die "listen: $!";
my $client = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => 7000) or die "connect: $!";
my $server = $listener->accept or die "accept: $!";
$client->autoflush(1);
my $n = 0;
while (1) {
    $n++;
    print $client "$n\n";
    my $got = <$server>;
    die "connection closed" unless defined $got;
    open(my $out, '>', '/tmp/counter.new') or die "open: $!";
    chomp $got;
    print $out "$id $got\n";
    close $out;
    rename '/tmp/counter.new', '/tmp/counter' or die "rename: $!";
    select(undef, undef, undef, 0.1);
}
